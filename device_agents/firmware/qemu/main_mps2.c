/* Cortex-M3 image for QEMU's mps2-an385: the portable protocol layer + the host-c-stub backend on
 * UART0, so the firmware's protocol code runs on a real MCU core (emulated by QEMU).
 *
 * Bare metal, no libc: vector table, reset handler, the four mem* functions the compiler may
 * call, a polled CMSDK UART driver and a SysTick-based 32-bit tick counter.
 *
 * Timing is EMULATED: samples come from the CMSDK TIMER0, which QEMU counts in virtual time at
 * 25 MHz, not cycles of a real Cortex-M3, and QEMU does not emulate the DWT cycle counter (it
 * reads 0). HELLO therefore says timer_hz 25000000, resolution 40 ns, flag EMULATED, board
 * "mps2-an385". SysTick ticks every ms for the inter-byte timeout and to wake the core from WFI.
 *
 * Run: qemu-system-arm -M mps2-an385 -display none -monitor none \
 *          -serial tcp:127.0.0.1:PORT,server=on,wait=on -kernel fw_mps2.elf
 */
#include <stddef.h>
#include <stdint.h>

#include "../host/stub_backend.h"
#include "../proto/proto_device.h"

#define REG(addr) (*(volatile uint32_t *)(addr))

/* CMSDK APB UART0 (AN385 TRM; QEMU hw/char/cmsdk-apb-uart.c). */
#define UART0 0x40004000u
#define UART_DATA REG(UART0 + 0x00u)
#define UART_STATE REG(UART0 + 0x04u)
#define UART_CTRL REG(UART0 + 0x08u)
#define UART_INTCLEAR REG(UART0 + 0x0Cu)
#define UART_BAUDDIV REG(UART0 + 0x10u)
#define UART_STATE_TX_FULL 0x1u
#define UART_STATE_RX_FULL 0x2u
#define UART_CTRL_TX_EN 0x1u
#define UART_CTRL_RX_EN 0x2u
#define UART_CTRL_RX_INT_EN 0x8u
#define UART_INT_RX 0x2u
#define NVIC_ISER0 REG(0xE000E100u)
#define UART0_RX_IRQ 0u /* QEMU hw/arm/mps2.c: UART0 RX is IRQ 0 on AN385 */

/* SysTick (ARMv7-M ARM B3.3). */
#define SYST_CSR REG(0xE000E010u)
#define SYST_RVR REG(0xE000E014u)
#define SYST_CVR REG(0xE000E018u)

/* CMSDK APB TIMER0 (QEMU hw/timer/cmsdk-apb-timer.c), clocked at 25 MHz on AN385. */
#define TIMER0 0x40000000u
#define TIMER0_CTRL REG(TIMER0 + 0x0u)
#define TIMER0_VALUE REG(TIMER0 + 0x4u)
#define TIMER0_RELOAD REG(TIMER0 + 0x8u)
#define SYSTICK_HZ 25000000u
#define SYSTICK_RELOAD (SYSTICK_HZ / 1000u - 1u) /* one interrupt per ms: millis() and wake-ups */
#define TIMER_HZ 25000000u

#define MODEL_STORE_BYTES (64u * 1024u)

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, _stack_top;

/* ---------------------------------------------------------------- libc shims (freestanding) */

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);

void *memcpy(void *dst, const void *src, size_t n)
{
    uint8_t *d = (uint8_t *)dst;
    const uint8_t *s = (const uint8_t *)src;
    while (n--)
        *d++ = *s++;
    return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
    uint8_t *d = (uint8_t *)dst;
    const uint8_t *s = (const uint8_t *)src;
    if (d < s) {
        while (n--)
            *d++ = *s++;
    } else {
        while (n) {
            n--;
            d[n] = s[n];
        }
    }
    return dst;
}

void *memset(void *dst, int c, size_t n)
{
    uint8_t *d = (uint8_t *)dst;
    while (n--)
        *d++ = (uint8_t)c;
    return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
    const uint8_t *x = (const uint8_t *)a, *y = (const uint8_t *)b;
    for (; n; n--, x++, y++)
        if (*x != *y)
            return *x < *y ? -1 : 1;
    return 0;
}

/* ---------------------------------------------------------------- timer */

static volatile uint32_t g_wraps;

void systick_handler(void);
void systick_handler(void)
{
    g_wraps++;
}

/* Sample clock: TIMER0 free-running from 0xFFFFFFFF down at 25 MHz, 32 bits, no interrupt
 * (wraps every 171 s; samples are differences). Not SysTick: QEMU's SysTick reads 0 from the
 * moment it expires until its I/O thread runs the reload, which on a loaded host froze the
 * clock for whole batches when SysTick reloaded every ms. */
static uint32_t ticks_now(void)
{
    return 0xFFFFFFFFu - TIMER0_VALUE;
}

/* Milliseconds since boot, for the inter-byte timeout. */
static uint32_t millis(void)
{
    return g_wraps;
}

/* ---------------------------------------------------------------- UART */

/* The RX interrupt only wakes the core from WFI; main reads the byte. Sleeping instead of
 * busy-polling matters under QEMU: a vCPU spinning on MMIO starves QEMU's I/O thread, which then
 * feeds the UART so slowly that the 100 ms inter-byte timeout cuts frames. */
void uart0_rx_handler(void);
void uart0_rx_handler(void)
{
    UART_INTCLEAR = UART_INT_RX;
}

static void uart_write(void *io, const uint8_t *data, uint32_t len)
{
    (void)io;
    while (len--) {
        while (UART_STATE & UART_STATE_TX_FULL)
            ;
        UART_DATA = *data++;
    }
}

/* ---------------------------------------------------------------- main */

static proto_device_t g_dev;
static stub_backend_t g_stub;
static proto_backend_t g_backend;
static uint8_t g_model_store[MODEL_STORE_BYTES];

int main(void);
int main(void)
{
    stub_config_t cfg;
    uint32_t last_rx = 0;

    UART_BAUDDIV = 16u; /* QEMU ignores the rate but wants a legal divider */
    UART_CTRL = UART_CTRL_TX_EN | UART_CTRL_RX_EN | UART_CTRL_RX_INT_EN;
    NVIC_ISER0 = 1u << UART0_RX_IRQ;
    TIMER0_RELOAD = 0xFFFFFFFFu;
    TIMER0_VALUE = 0xFFFFFFFFu;
    TIMER0_CTRL = 0x1u; /* enable, no interrupt */
    SYST_RVR = SYSTICK_RELOAD;
    SYST_CVR = 0;
    SYST_CSR = 0x7u; /* processor clock, interrupt, enable */

    memset(&cfg, 0, sizeof cfg);
    cfg.now = ticks_now;
    cfg.cpu_hz = SYSTICK_HZ;
    cfg.timer_hz = TIMER_HZ;
    cfg.timer_resolution_ns = 1000000000u / TIMER_HZ;
    cfg.board = "mps2-an385";
    cfg.cpu = "Cortex-M3";
    cfg.model_store = g_model_store;
    cfg.max_model_bytes = MODEL_STORE_BYTES;
    cfg.work_per_invoke = 2000u;
    stub_backend_init(&g_stub, &cfg, &g_backend);
    if (proto_device_init(&g_dev, &g_backend, uart_write, NULL, (uint16_t)PROTO_MAX_PAYLOAD) != 0)
        for (;;)
            ;
    proto_device_boot(&g_dev);
    for (;;) {
        if (UART_STATE & UART_STATE_RX_FULL) {
            uint8_t byte = (uint8_t)UART_DATA;
            last_rx = millis();
            proto_device_rx(&g_dev, byte);
        } else if (proto_device_pending(&g_dev) && millis() - last_rx >= PROTO_INTER_BYTE_TIMEOUT_MS) {
            proto_device_idle(&g_dev);
        } else {
            /* Sleep until the next byte or SysTick (1 ms). With interrupts masked, a byte that
             * lands between the check and WFI still wakes the core: no lost wake-up. */
            __asm volatile("cpsid i" ::: "memory");
            if (!(UART_STATE & UART_STATE_RX_FULL))
                __asm volatile("wfi");
            __asm volatile("cpsie i" ::: "memory");
        }
    }
}

/* ---------------------------------------------------------------- startup */

void reset_handler(void);
void reset_handler(void)
{
    uint32_t *src = &_sidata, *dst = &_sdata;
    while (dst < &_edata)
        *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss;)
        *dst++ = 0;
    main();
    for (;;)
        ;
}

static void default_handler(void)
{
    for (;;)
        ;
}

typedef void (*vector_t)(void);

/* Cortex-M vector table: initial SP, exception handlers (SysTick is entry 15), then IRQ 0. */
__attribute__((section(".vectors"), used)) static const vector_t g_vectors[17] = {
    (vector_t)(uintptr_t)&_stack_top, reset_handler, default_handler, default_handler, default_handler,
    default_handler, default_handler, 0, 0, 0, 0, default_handler, default_handler, 0, default_handler,
    systick_handler, uart0_rx_handler};
