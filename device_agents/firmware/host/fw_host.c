/* fw_host: the portable protocol layer + the host-c-stub backend, serving a tty on a POSIX host.
 *
 * Usage:
 *     fw_host [--tty PATH | --pty] [--max-payload N] [--max-model BYTES] [--work MACS] [--baud N]
 *             [--board NAME] [--cpu NAME] [--tflm-version TEXT] [--exit-on-stdin-eof]
 *
 *   --tty PATH   serve an existing tty (set raw), e.g. one end of a socat pair or a pty slave
 *   --pty        create a pty, print {"port": "/dev/pts/N", "pid": PID} on stdout, serve its master
 *   (neither)    serve stdin/stdout (pipes)
 *   --baud N     pace reads and writes at N baud, 8N1 (a pty moves bytes at memory speed); 0 = off
 *   --board, --cpu, --tflm-version   HELLO_OK's strings (UTF-8; default host-c-stub, host CPU,
 *                none (stub)): long ones exercise the cuts of SERIAL_PROTOCOL.md 3.1
 *
 * SIGUSR1 is the reset button: state is dropped and BOOT is sent. SIGTERM/SIGINT end it.
 * Samples are CLOCK_MONOTONIC nanoseconds on this host around a stub workload: HELLO says
 * EMULATED, board "host-c-stub". Diagnostics go to stderr only.
 */
#define _XOPEN_SOURCE 700
#define _DEFAULT_SOURCE

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "../proto/proto_device.h"
#include "stub_backend.h"

#define MAX_MODEL_CEILING (4u * 1024u * 1024u)

static volatile sig_atomic_t g_stop;
static volatile sig_atomic_t g_reset;
static uint8_t g_model_store[MAX_MODEL_CEILING];
static proto_device_t g_dev;
static stub_backend_t g_stub;
static proto_backend_t g_backend;

struct line {
    int rfd;
    int wfd;
    long baud;
};

static uint32_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    /* Wraps every 4.29 s: samples are differences, valid while one span stays below that. */
    return (uint32_t)((uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void pace(long baud, size_t n)
{
    if (baud > 0 && n) {
        uint64_t ns = (uint64_t)n * 10u * 1000000000u / (uint64_t)baud;
        struct timespec ts;
        ts.tv_sec = (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
    }
}

static void line_write(void *io, const uint8_t *data, uint32_t len)
{
    struct line *l = (struct line *)io;
    pace(l->baud, len);
    while (len) {
        ssize_t n = write(l->wfd, data, len);
        if (n > 0) {
            data += n;
            len -= (uint32_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            struct pollfd p = {l->wfd, POLLOUT, 0};
            poll(&p, 1, 50);
        } else {
            /* EIO: nobody holds the other end of the pty. A UART with no listener loses the
             * bytes too; the host retransmits when it comes back. */
            return;
        }
    }
}

static int set_raw(int fd)
{
    struct termios t;
    if (tcgetattr(fd, &t) != 0)
        return -1;
    cfmakeraw(&t);
    return tcsetattr(fd, TCSANOW, &t);
}

static void on_signal(int sig)
{
    if (sig == SIGUSR1)
        g_reset = 1;
    else
        g_stop = 1;
}

static int parse_u32(const char *s, unsigned long max, unsigned long *out)
{
    char *end;
    unsigned long v;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno || *s == '\0' || *end != '\0' || v > max)
        return -1;
    *out = v;
    return 0;
}

static int usage(const char *why)
{
    fprintf(stderr,
            "fw_host: %s\nusage: fw_host [--tty PATH | --pty] [--max-payload 64..%u] [--max-model BYTES]"
            " [--work MACS] [--baud N] [--board NAME] [--cpu NAME] [--tflm-version TEXT]"
            " [--exit-on-stdin-eof]\n",
            why, (unsigned)PROTO_MAX_PAYLOAD);
    return 2;
}

int main(int argc, char **argv)
{
    const char *tty = NULL, *board = "host-c-stub", *cpu = "host CPU", *tflm_version = NULL;
    int make_pty = 0, watch_stdin = 0, i, slave_keep = -1;
    unsigned long max_payload = PROTO_MAX_PAYLOAD, max_model = 1024u * 1024u, work = 20000u, baud = 0;
    struct line line;
    stub_config_t cfg;
    struct timespec res;
    struct sigaction sa;
    uint64_t last_rx = 0;

    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = (i + 1 < argc) ? argv[i + 1] : NULL;
        if (strcmp(a, "--pty") == 0) {
            make_pty = 1;
        } else if (strcmp(a, "--exit-on-stdin-eof") == 0) {
            watch_stdin = 1;
        } else if (v == NULL) {
            return usage("missing value or unknown option");
        } else if (strcmp(a, "--tty") == 0) {
            tty = v;
            i++;
        } else if (strcmp(a, "--max-payload") == 0) {
            if (parse_u32(v, PROTO_MAX_PAYLOAD, &max_payload) || max_payload < PROTO_MIN_PAYLOAD)
                return usage("--max-payload out of range");
            i++;
        } else if (strcmp(a, "--max-model") == 0) {
            if (parse_u32(v, MAX_MODEL_CEILING, &max_model))
                return usage("--max-model out of range (at most 4 MiB)");
            i++;
        } else if (strcmp(a, "--work") == 0) {
            if (parse_u32(v, 100000000ul, &work))
                return usage("--work out of range");
            i++;
        } else if (strcmp(a, "--board") == 0) {
            board = v;
            i++;
        } else if (strcmp(a, "--cpu") == 0) {
            cpu = v;
            i++;
        } else if (strcmp(a, "--tflm-version") == 0) {
            tflm_version = v;
            i++;
        } else if (strcmp(a, "--baud") == 0) {
            if (parse_u32(v, 100000000ul, &baud))
                return usage("--baud out of range");
            i++;
        } else {
            return usage("unknown option");
        }
    }
    if (tty && make_pty)
        return usage("--tty and --pty exclude each other");

    line.baud = (long)baud;
    line.rfd = STDIN_FILENO;
    line.wfd = STDOUT_FILENO;
    if (tty) {
        int fd = open(tty, O_RDWR | O_NOCTTY | O_NONBLOCK);
        if (fd < 0 || set_raw(fd) != 0) {
            fprintf(stderr, "fw_host: cannot open tty %s: %s\n", tty, strerror(errno));
            return 1;
        }
        line.rfd = line.wfd = fd;
    } else if (make_pty) {
        int master = posix_openpt(O_RDWR | O_NOCTTY);
        const char *name;
        if (master < 0 || grantpt(master) != 0 || unlockpt(master) != 0 || (name = ptsname(master)) == NULL) {
            fprintf(stderr, "fw_host: cannot create a pty: %s\n", strerror(errno));
            return 1;
        }
        /* Raw before anyone opens it (an echoing pty would hand us our own replies), and the
         * slave stays open so the pty survives the host closing and reopening its port. */
        slave_keep = open(name, O_RDWR | O_NOCTTY);
        if (slave_keep < 0 || set_raw(slave_keep) != 0 || set_raw(master) != 0) {
            fprintf(stderr, "fw_host: cannot set up pty %s: %s\n", name, strerror(errno));
            return 1;
        }
        fcntl(master, F_SETFL, fcntl(master, F_GETFL) | O_NONBLOCK);
        line.rfd = line.wfd = master;
        printf("{\"port\": \"%s\", \"pid\": %ld}\n", name, (long)getpid());
        fflush(stdout);
    }

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    memset(&cfg, 0, sizeof cfg);
    cfg.now = now_ns;
    cfg.cpu_hz = 0;
    cfg.timer_hz = 1000000000u;
    cfg.timer_resolution_ns = (clock_getres(CLOCK_MONOTONIC, &res) == 0 && res.tv_sec == 0 && res.tv_nsec > 0)
                                  ? (uint32_t)res.tv_nsec
                                  : 1u;
    cfg.board = board;
    cfg.cpu = cpu;
    cfg.tflm_version = tflm_version;
    cfg.model_store = g_model_store;
    cfg.max_model_bytes = (uint32_t)max_model;
    cfg.work_per_invoke = (uint32_t)work;
    stub_backend_init(&g_stub, &cfg, &g_backend);
    if (proto_device_init(&g_dev, &g_backend, line_write, &line, (uint16_t)max_payload) != 0) {
        fprintf(stderr, "fw_host: device init failed\n");
        return 1;
    }
    proto_device_boot(&g_dev);

    while (!g_stop) {
        struct pollfd fds[2];
        int nfds = 1, timeout = 200, rc;
        uint64_t t = now_ms();
        if (g_reset) {
            g_reset = 0;
            proto_device_reset(&g_dev);
            proto_device_boot(&g_dev);
            fprintf(stderr, "fw_host: reset (SIGUSR1), BOOT sent\n");
        }
        if (proto_device_pending(&g_dev)) {
            uint64_t due = last_rx + PROTO_INTER_BYTE_TIMEOUT_MS;
            if (t >= due) {
                proto_device_idle(&g_dev);
                continue;
            }
            timeout = (int)(due - t);
        }
        fds[0].fd = line.rfd;
        fds[0].events = POLLIN;
        fds[0].revents = 0;
        if (watch_stdin && line.rfd != STDIN_FILENO) {
            fds[1].fd = STDIN_FILENO;
            fds[1].events = POLLIN;
            fds[1].revents = 0;
            nfds = 2;
        }
        rc = poll(fds, (nfds_t)nfds, timeout);
        if (rc < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "fw_host: poll: %s\n", strerror(errno));
            return 1;
        }
        if (nfds == 2 && (fds[1].revents & (POLLIN | POLLHUP))) {
            char junk[256];
            if (read(STDIN_FILENO, junk, sizeof junk) <= 0)
                break; /* the host went away: never linger as an orphan */
        }
        if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
            uint8_t buf[512];
            ssize_t n = read(line.rfd, buf, sizeof buf);
            if (n > 0) {
                ssize_t k;
                pace(line.baud, (size_t)n);
                last_rx = now_ms();
                for (k = 0; k < n; k++)
                    proto_device_rx(&g_dev, buf[k]);
            } else if (n == 0 && line.rfd == STDIN_FILENO) {
                break; /* end of the stdin stream */
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                /* EIO on a pty master while no one holds the slave: wait for the host. */
                struct timespec ts = {0, 50 * 1000000L};
                nanosleep(&ts, NULL);
            } else if (n == 0) {
                struct timespec ts = {0, 50 * 1000000L};
                nanosleep(&ts, NULL);
            }
        }
    }
    fprintf(stderr, "fw_host: %lu requests, %lu retransmissions answered from memory, %lu bytes discarded, "
                    "%lu CRC errors\n",
            (unsigned long)g_dev.frames, (unsigned long)g_dev.replays, (unsigned long)g_dev.parser.discarded,
            (unsigned long)g_dev.parser.crc_errors);
    if (slave_keep >= 0)
        close(slave_keep);
    return 0;
}
