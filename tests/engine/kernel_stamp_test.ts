// The committed CPU kernel builds against the committed C: every build reports
// the stamp of the source it was compiled from, the stamps the loaders expect
// (_kernel_stamps.ts) are those of today's sources, and a build from other
// source is refused with a message naming it. Changing gemm.c without running
// `deno task build-wasm` fails here.

import assert from "node:assert/strict";
import {
  KERNEL_STAMPS,
  sourceStamp,
  STAMPED_SOURCES,
  stampMismatch,
} from "../../src/engine/cpu/_kernel_stamp.ts";
import { MAX_PAGES } from "../../src/engine/cpu/_gemm_layout.ts";

const KERNELS = new URL("../../src/engine/cpu/kernels/", import.meta.url);

Deno.test("the expected stamps are those of the committed kernel sources", async () => {
  for (const { source, files } of STAMPED_SOURCES) {
    const texts = files.map((f) => Deno.readTextFileSync(new URL(f, KERNELS)));
    assert.equal(
      await sourceStamp(texts),
      KERNEL_STAMPS[source],
      `${source} changed since its builds: run \`deno task build-wasm\` and commit the builds`,
    );
  }
});

Deno.test("every committed WebAssembly build reports its source's stamp", () => {
  const builds = [
    { file: "gemm_relaxed.wasm", source: "gemm.c", symbol: "gemm_stamp" },
    { file: "gemm_simd.wasm", source: "gemm.c", symbol: "gemm_stamp" },
    { file: "block_transform.wasm", source: "block_transform.c", symbol: "block_transform_stamp" },
  ] as const;
  for (const { file, source, symbol } of builds) {
    const bytes = Deno.readFileSync(new URL(file, KERNELS));
    // Every build here validates on Deno's V8 (relaxed SIMD included); one that did not could
    // not be checked, and that would be a failure, not a skip.
    const memory = new WebAssembly.Memory({ initial: 17, maximum: MAX_PAGES, shared: true });
    const instance = new WebAssembly.Instance(new WebAssembly.Module(bytes), { env: { memory } });
    const stamp = (instance.exports[symbol] as () => number)();
    assert.equal(stampMismatch(file, source, stamp), null, file);
  }
});

Deno.test({
  name: "the committed native library reports gemm.c's stamp",
  // The library is an x86-64 Linux build; elsewhere it cannot be opened at all.
  ignore: Deno.build.os !== "linux" || Deno.build.arch !== "x86_64",
  fn: () => {
    const lib = Deno.dlopen(new URL("gemm_x86_64.so", KERNELS), {
      llmc_gemm_stamp: { parameters: [], result: "u32" },
    });
    try {
      assert.equal(stampMismatch("gemm_x86_64.so", "gemm.c", lib.symbols.llmc_gemm_stamp()), null);
    } finally {
      lib.close();
    }
  },
});

Deno.test("a build from other source is refused, naming the build, both stamps and the fix", () => {
  const other = (KERNEL_STAMPS["gemm.c"] ^ 1) >>> 0;
  const message = stampMismatch("gemm_x86_64.so", "gemm.c", other);
  assert.ok(message !== null);
  assert.match(message, /^gemm_x86_64\.so was built from another gemm\.c/);
  assert.ok(message.includes(`0x${other.toString(16).padStart(8, "0")}`), message);
  assert.ok(message.includes("deno task build-wasm"), message);
});
