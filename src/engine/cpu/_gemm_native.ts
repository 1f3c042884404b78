/**
 * The native build of the GEMM kernels: `kernels/gemm_x86_64.so`, gemm.c
 * compiled for x86-64 with AVX2 + FMA, loaded through Deno's FFI. It runs the
 * same jobs on the same shared WebAssembly memory as the WebAssembly builds
 * (addresses in the job block are offsets from the memory's first byte), with
 * a 256-bit micro-kernel instead of a 128-bit one, and gives the same bits as
 * the relaxed-SIMD build.
 *
 * It is used only where it can be: Linux on x86-64, FFI permitted
 * (`--allow-ffi` or `-A`), the library on the local file system, and a CPU
 * whose `cpuid` reports AVX2 and FMA with the OS saving the ymm registers,
 * and a library built from this gemm.c (its stamp, see _kernel_stamp.ts).
 * {@linkcode probeNativeGemm} says which of these failed, for the banner.
 *
 * @module
 */

import { stampMismatch } from "./_kernel_stamp.ts";

/** The library's file name beside gemm.c. */
const NATIVE_LIBRARY = "gemm_x86_64.so";

const SYMBOLS = {
  llmc_gemm_run: { parameters: ["pointer", "u32", "i32", "i32"], result: "i32" },
  llmc_gemm_supported: { parameters: [], result: "i32" },
  llmc_gemm_stamp: { parameters: [], result: "u32" },
} as const;

/** The native kernels, opened in one thread. */
export interface NativeGemm {
  /** Runs tasks of generation `gen` of the job at byte offset `job` of the memory at `base`. */
  run(base: Deno.PointerValue, job: number, gen: number, tid: number): number;
  /** Unloads the library from this thread. */
  close(): void;
}

/** Where the library is, or why this process cannot use it. */
export type NativeProbe = { ok: true; path: string } | { ok: false; reason: string };

/**
 * Whether this process can use the native kernels, without keeping them open.
 *
 * @example
 * ```ts ignore
 * const probe = probeNativeGemm();
 * console.log(probe.ok ? `native kernels at ${probe.path}` : probe.reason);
 * ```
 */
export function probeNativeGemm(): NativeProbe {
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") {
    return { ok: false, reason: `no native build for ${Deno.build.os}/${Deno.build.arch}` };
  }
  const url = new URL(`./kernels/${NATIVE_LIBRARY}`, import.meta.url);
  if (url.protocol !== "file:") {
    return { ok: false, reason: "llmc is not on the local file system" };
  }
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    return { ok: false, reason: "FFI is not permitted (run with --allow-ffi)" };
  }
  const path = url.pathname;
  let lib: Deno.DynamicLibrary<typeof SYMBOLS>;
  try {
    lib = Deno.dlopen(path, SYMBOLS);
  } catch (e) {
    return { ok: false, reason: `cannot load ${path}: ${e instanceof Error ? e.message : e}` };
  }
  try {
    if (lib.symbols.llmc_gemm_supported() !== 1) {
      return { ok: false, reason: "this CPU or OS lacks AVX2 + FMA" };
    }
    const stale = stampMismatch(NATIVE_LIBRARY, "gemm.c", lib.symbols.llmc_gemm_stamp());
    if (stale !== null) return { ok: false, reason: stale };
  } finally {
    lib.close();
  }
  return { ok: true, path };
}

/**
 * Opens the library at `path` (from a successful {@linkcode probeNativeGemm})
 * in the calling thread.
 *
 * @example
 * ```ts ignore
 * const probe = probeNativeGemm();
 * if (probe.ok) openNativeGemm(probe.path).close();
 * ```
 */
export function openNativeGemm(path: string): NativeGemm {
  const lib = Deno.dlopen(path, SYMBOLS);
  return {
    run: (base, job, gen, tid) => lib.symbols.llmc_gemm_run(base, job, gen, tid),
    close: () => lib.close(),
  };
}

/** The address of the shared memory's first byte (the same in every thread). */
export function memoryBase(memory: WebAssembly.Memory): Deno.PointerValue {
  return Deno.UnsafePointer.of(new Uint8Array(memory.buffer));
}
