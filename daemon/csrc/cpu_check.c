/*
 * The instruction-set check `cairn` and `cairnd` make before anything else
 * (daemon/src/cpu.rs). The Rust code targets x86-64-v2 (.cargo/config.toml),
 * and the compiler may use those instructions anywhere in it, even while
 * printing an error. This file is compiled for the baseline x86-64
 * (daemon/build.rs), so it runs, and says what is missing, on a CPU the rest
 * of the binary would die on with an illegal instruction.
 *
 * Bit i of a mask stands for NAMES[i]; daemon/src/cpu.rs lists the same
 * names in the same order.
 */
#include <cpuid.h>
#include <string.h>
#include <unistd.h>

static const char *const NAMES[] = {
    "cmpxchg16b", "popcnt", "sse3", "ssse3", "sse4.1", "sse4.2", "avx",
    "avx2", "bmi1", "bmi2", "f16c", "fma", "lzcnt", "movbe",
};
#define COUNT (sizeof NAMES / sizeof NAMES[0])

static unsigned int bit(unsigned int reg, int n) { return (reg >> n) & 1u; }

/* XCR0: which register states the operating system saves (bits 1 and 2:
 * SSE and AVX). Only read when CPUID says XGETBV is enabled (OSXSAVE). */
static unsigned long long xcr0(void) {
  unsigned int lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return ((unsigned long long)hi << 32) | lo;
}

/* The extensions of `required` this CPU lacks, as a mask. */
unsigned int cairn_cpu_missing(unsigned int required) {
  unsigned int a = 0, b = 0, c = 0, d = 0;
  unsigned int c1 = 0, b7 = 0, c81 = 0;
  if (__get_cpuid(1, &a, &b, &c, &d)) c1 = c;
  if (__get_cpuid_max(0, 0) >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    b7 = b;
  }
  if (__get_cpuid(0x80000001u, &a, &b, &c, &d)) c81 = c;
  unsigned int os_avx = bit(c1, 27) && (xcr0() & 6) == 6;
  unsigned int have = bit(c1, 13) << 0     /* cmpxchg16b */
                      | bit(c1, 23) << 1   /* popcnt */
                      | bit(c1, 0) << 2    /* sse3 */
                      | bit(c1, 9) << 3    /* ssse3 */
                      | bit(c1, 19) << 4   /* sse4.1 */
                      | bit(c1, 20) << 5   /* sse4.2 */
                      | (os_avx & bit(c1, 28)) << 6   /* avx */
                      | (os_avx & bit(b7, 5)) << 7    /* avx2 */
                      | bit(b7, 3) << 8    /* bmi1 */
                      | bit(b7, 8) << 9    /* bmi2 */
                      | (os_avx & bit(c1, 29)) << 10  /* f16c */
                      | (os_avx & bit(c1, 12)) << 11  /* fma */
                      | bit(c81, 5) << 12  /* lzcnt */
                      | bit(c1, 22) << 13; /* movbe */
  return required & ~have;
}

static void put(const char *s) {
  size_t n = strlen(s);
  while (n > 0) {
    ssize_t w = write(2, s, n);
    if (w <= 0) return;
    s += w;
    n -= (size_t)w;
  }
}

/* Returns when the CPU has every extension of `required`; otherwise names
 * the missing ones on standard error and exits with status 2. */
void cairn_cpu_require(unsigned int required, const char *program) {
  unsigned int missing = cairn_cpu_missing(required);
  if (missing == 0) return;
  put(program);
  put(": error: this CPU lacks ");
  const char *sep = "";
  for (unsigned int i = 0; i < COUNT; i++) {
    if (missing & (1u << i)) {
      put(sep);
      put(NAMES[i]);
      sep = ", ";
    }
  }
  put(", which this build of cairn was compiled to use; rebuild it for this "
      "CPU (README, \"Building for an x86-64 CPU\")\n");
  _exit(2);
}
