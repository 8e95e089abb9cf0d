// Arduino glue for the TFLite Micro firmware: serial line, sample timer, main loop.
//
// Target: Arduino Nano 33 BLE / BLE Sense (nRF52840, Cortex-M4F at 64 MHz, Arduino mbed core)
// with the tflite-micro-arduino-examples library; see ../README.md for the PlatformIO build.
// Any Cortex-M3/M4/M7 Arduino board works the same way (the DWT cycle counter is probed at boot,
// micros() is the fallback); on other cores only the timer block below changes.
//
// The protocol runs on HARNESS_PROTOCOL_SERIAL (default SerialUSB). TFLite Micro's DebugLog also
// prints to SerialUSB in that library: its text (only on errors) lands between frames, where the
// host's resynchronisation discards it. Build with -DHARNESS_PROTOCOL_SERIAL=Serial1 to keep the
// protocol alone on the hardware UART (pins D0/D1, via a 3.3 V USB-serial adapter).
#include <Arduino.h>

#include "../proto/proto_device.h"
#include "tflm_backend.h"

#ifdef HARNESS_BUILTIN_MODEL
#include "model_data.h"  // xxd -i model.tflite > model_data.h, arrays renamed g_model / g_model_len
#endif

#ifndef HARNESS_PROTOCOL_SERIAL
#define HARNESS_PROTOCOL_SERIAL SerialUSB
#endif
#ifndef HARNESS_BOARD_NAME
#define HARNESS_BOARD_NAME "Arduino Nano 33 BLE"
#endif
#ifndef HARNESS_CPU_NAME
#define HARNESS_CPU_NAME "Cortex-M4F nRF52840"
#endif
#ifndef HARNESS_BAUD  // ignored by USB CDC, used by a hardware UART
#define HARNESS_BAUD 115200
#endif

namespace {

// DWT cycle counter (ARMv7-M Architecture Reference Manual, C1.8): raw addresses, so this file
// does not depend on which CMSIS device header a core ships.
volatile uint32_t* const kDemcr = reinterpret_cast<volatile uint32_t*>(0xE000EDFCu);
volatile uint32_t* const kDwtCtrl = reinterpret_cast<volatile uint32_t*>(0xE0001000u);
volatile uint32_t* const kDwtCyccnt = reinterpret_cast<volatile uint32_t*>(0xE0001004u);
constexpr uint32_t kDemcrTrcena = 1u << 24;
constexpr uint32_t kDwtNoCyccnt = 1u << 25;
constexpr uint32_t kDwtCyccntEna = 1u << 0;

uint32_t cycles_now() { return *kDwtCyccnt; }
uint32_t micros_now() { return static_cast<uint32_t>(micros()); }

uint32_t core_hz() {
#if defined(F_CPU)
  return static_cast<uint32_t>(F_CPU);
#else
  return 0;
#endif
}

// Enables CYCCNT and checks that it really counts (some cores lock DWT, an emulator reads 0).
bool start_cycle_counter() {
#if defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__)
  *kDemcr |= kDemcrTrcena;
  if (*kDwtCtrl & kDwtNoCyccnt) return false;
  *kDwtCyccnt = 0;
  *kDwtCtrl |= kDwtCyccntEna;
  const uint32_t a = *kDwtCyccnt;
  delayMicroseconds(10);
  return *kDwtCyccnt != a;
#else
  return false;
#endif
}

TflmBoard g_board;
proto_backend_t g_backend;
proto_device_t g_dev;  // two frame buffers: static, never on the stack
uint32_t g_last_rx_ms;

void serial_write(void* io, const uint8_t* data, uint32_t len) {
  (void)io;
  HARNESS_PROTOCOL_SERIAL.write(data, len);
}

}  // namespace

void setup() {
  HARNESS_PROTOCOL_SERIAL.begin(HARNESS_BAUD);
  const uint32_t hz = core_hz();
  if (hz != 0 && start_cycle_counter()) {
    g_board.now = cycles_now;
    g_board.timer_hz = hz;
    g_board.timer_resolution_ns = (1000000000u + hz - 1u) / hz;  // 16 ns at 64 MHz (15.6 rounded up)
    g_board.cycle_counter = true;
  } else {
    g_board.now = micros_now;
    g_board.timer_hz = 1000000u;
    g_board.timer_resolution_ns = 1000u;
    g_board.cycle_counter = false;
  }
  g_board.cpu_hz = hz;
  g_board.board = HARNESS_BOARD_NAME;
  g_board.cpu = HARNESS_CPU_NAME;
#ifdef HARNESS_BUILTIN_MODEL
  g_board.builtin_model = g_model;
  g_board.builtin_model_bytes = g_model_len;
#endif
  tflm_backend_init(&g_board, &g_backend);
  proto_device_init(&g_dev, &g_backend, serial_write, nullptr, static_cast<uint16_t>(PROTO_MAX_PAYLOAD));
  proto_device_boot(&g_dev);  // a host that opens the port later misses it: allowed by the spec
}

void loop() {
  int n = HARNESS_PROTOCOL_SERIAL.available();
  if (n > 0) {
    while (n-- > 0) {
      const int c = HARNESS_PROTOCOL_SERIAL.read();
      if (c < 0) break;
      proto_device_rx(&g_dev, static_cast<uint8_t>(c));
    }
    g_last_rx_ms = millis();
  } else if (proto_device_pending(&g_dev) && millis() - g_last_rx_ms >= PROTO_INTER_BYTE_TIMEOUT_MS) {
    proto_device_idle(&g_dev);  // a frame cut by dropped bytes must not hold the parser
  }
}
