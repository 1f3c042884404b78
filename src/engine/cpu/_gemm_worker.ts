/**
 * A GEMM worker thread: instantiates the kernels on the shared memory it is
 * given (and opens the native library when the runtime uses it), then sleeps on the job block's WAKE word and joins every job the
 * main thread publishes, claiming column stripes until none is left.
 *
 * By default a `node:worker_threads` worker, not a web Worker, because only
 * the former can be `unref()`ed: a web Worker blocked in `Atomics.wait` keeps
 * `deno run` alive forever after the main module has finished. A program that
 * always ends with `Deno.exit` (the CLI) may use web Workers, which start
 * faster (`PoolWorkers` in _gemm_runtime.ts).
 *
 * @module
 */

import { workerData } from "node:worker_threads";
import { type GemmExports, JOB, JOB_ADDRESS, JOB_SLOTS } from "./_gemm_layout.ts";
import type { GemmWorkerData } from "./_gemm_runtime.ts";
import { memoryBase, openNativeGemm } from "./_gemm_native.ts";

// A node:worker_threads worker gets its data at creation; a web Worker (the
// runtime's "web" pool) in its first message.
const { module, memory, tid, native }: GemmWorkerData = workerData ??
  await new Promise<GemmWorkerData>((resolve) =>
    globalThis.addEventListener("message", (e) => resolve((e as MessageEvent).data), {
      once: true,
    })
  );
const instance = new WebAssembly.Instance(new WebAssembly.Module(module), { env: { memory } });
const kernels = instance.exports as unknown as GemmExports;
// Taking the memory's address needs FFI permission: only the native build asks.
const nativeKernels = native ? openNativeGemm(native) : null;
const base = nativeKernels ? memoryBase(memory) : null;
const gemmRun = nativeKernels
  ? (gen: number) => nativeKernels.run(base, JOB_ADDRESS, gen, tid)
  : (gen: number) => kernels.gemm_run(JOB_ADDRESS, gen, tid);
// The job block lives in the first page, so this view survives memory growth.
const job = new Int32Array(memory.buffer, JOB_ADDRESS, JOB_SLOTS);

let seen = Atomics.load(job, JOB.WAKE);
for (;;) {
  Atomics.wait(job, JOB.WAKE, seen);
  if (Atomics.load(job, JOB.STOP)) break;
  seen = Atomics.load(job, JOB.WAKE);
  try {
    const ran = gemmRun(Atomics.load(job, JOB.CLAIM) >>> 16);
    if (ran) Atomics.add(job, JOB.WORKER_TASKS, ran);
  } catch (e) {
    console.error(`llmc cpu gemm worker ${tid}:`, e);
    Atomics.store(job, JOB.FAILED, 1);
  }
  Atomics.notify(job, JOB.DONE);
}
