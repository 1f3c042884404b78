/**
 * The kernel loader's `//! include "file.wgsl"` directive: splicing (each
 * file once, nested includes), the errors for cycles, missing files and
 * malformed directives, and compile errors mapped back to file:line.
 */

import assert from "node:assert/strict";
import {
  compileKernel,
  getGpu,
  type Gpu,
  KernelCompileError,
  loadKernel,
  throwIfGpuFailed,
} from "../../src/gpu/mod.ts";
import {
  describeCompileErrors,
  includeDirectives,
  originOf,
  spliceIncludes,
} from "../../src/gpu/_wgsl_include.ts";

/** A reader over in-memory files that counts its reads. */
function files(texts: Record<string, string>): {
  read: (file: string) => string;
  reads: string[];
} {
  const reads: string[] = [];
  return {
    reads,
    read: (file) => {
      reads.push(file);
      if (!(file in texts)) throw new Error(`${file}: no such file`);
      return texts[file];
    },
  };
}

const lineOf = (code: string, text: string) => code.split("\n").indexOf(text) + 1;

Deno.test("includes are spliced in place, nested ones too, each file once", () => {
  const { read, reads } = files({
    "a.wgsl": '// a1\n//! include "common.wgsl"\n// a3\n',
    "b.wgsl": '//! include "common.wgsl"\n// b2\n//! include "a.wgsl"\n',
    "common.wgsl": "// c1\n// c2\n",
  });
  const root =
    '// r1\n//! include "a.wgsl"\n//! include "b.wgsl"\n  //! include "common.wgsl"\n// r5\n';
  const s = spliceIncludes("root.wgsl", root, read);
  assert.equal(s.code, "// r1\n// a1\n// c1\n// c2\n// a3\n// b2\n// r5\n");
  assert.deepEqual(reads, ["a.wgsl", "common.wgsl", "b.wgsl"]);
  assert.equal(s.origins.length, 7);
  assert.deepEqual(originOf(s, lineOf(s.code, "// c2")), { file: "common.wgsl", line: 2 });
  assert.deepEqual(originOf(s, lineOf(s.code, "// a3")), { file: "a.wgsl", line: 3 });
  assert.deepEqual(originOf(s, lineOf(s.code, "// b2")), { file: "b.wgsl", line: 2 });
  assert.deepEqual(originOf(s, lineOf(s.code, "// r5")), { file: "root.wgsl", line: 5 });
  // Lines without an origin (0: the compiler gave none) fall back to the root.
  assert.deepEqual(originOf(s, 0), { file: "root.wgsl", line: 0 });
  // Without directives the text comes through unchanged.
  const plain = "fn f() {}\r\n// no final newline";
  assert.equal(spliceIncludes("p.wgsl", plain, read).code, plain + "\n");
});

Deno.test("an include cycle is an error naming the chain of files", () => {
  const { read } = files({
    "a.wgsl": '//! include "b.wgsl"\n',
    "b.wgsl": '// b\n//! include "c.wgsl"\n',
    "c.wgsl": '//! include "a.wgsl"\n',
    "self.wgsl": '// s\n//! include "self.wgsl"\n',
  });
  assert.throws(
    () => spliceIncludes("root.wgsl", '//! include "a.wgsl"\n', read),
    (e: Error) => {
      assert.ok(e instanceof KernelCompileError);
      assert.equal(e.message, "c.wgsl:1: include cycle: a.wgsl → b.wgsl → c.wgsl → a.wgsl");
      return true;
    },
  );
  assert.throws(
    () => spliceIncludes("self.wgsl", read("self.wgsl"), read),
    /self\.wgsl:2: include cycle: self\.wgsl → self\.wgsl/,
  );
});

Deno.test("a missing file or a malformed directive names the including file:line", () => {
  const { read } = files({ "a.wgsl": '// a\n\n//! include "gone.wgsl"\n' });
  assert.throws(
    () => spliceIncludes("root.wgsl", '//! include "a.wgsl"\n', read),
    (e: Error) => {
      assert.ok(e instanceof KernelCompileError);
      assert.equal(e.message, 'a.wgsl:3: cannot include "gone.wgsl": gone.wgsl: no such file');
      return true;
    },
  );
  for (
    const bad of ["//! include common.wgsl", '//! includes "x.wgsl"', "//!", '//! include "a" x']
  ) {
    assert.throws(
      () => includeDirectives("k.wgsl", `// ok\n${bad}\n`),
      (e: Error) => e instanceof KernelCompileError && e.message.startsWith("k.wgsl:2: expected"),
      bad,
    );
  }
  assert.deepEqual(includeDirectives("k.wgsl", '//!include "x.wgsl"\n// //! not a directive\n'), [
    { file: "x.wgsl", line: 1 },
  ]);
});

/** Drains the uncaptured error a failed createShaderModule leaves on the device. */
async function drainDeviceErrors(gpu: Gpu): Promise<void> {
  await gpu.device.queue.onSubmittedWorkDone();
  try {
    throwIfGpuFailed(gpu);
  } catch {
    // expected: the compile error the test just provoked
  }
}

Deno.test("kernels and generated sources include files from kernels/", async () => {
  const gpu = await getGpu();
  // quantize_common.wgsl twice: spliced once, or its functions would be redefined.
  const code = `//! include "quantize_common.wgsl"
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
//! include "quantize_common.wgsl"
@compute @workgroup_size(1) fn main() { y[0] = cast_fp4(div_rn(y[0], 3.0)); }
`;
  await compileKernel(gpu, "uses_common.wgsl", code);
  await loadKernel(gpu, "fake_quantize_fp4.wgsl");
  await assert.rejects(
    () => compileKernel(gpu, "gen.wgsl", '// gen\n//! include "no_such_file.wgsl"\n'),
    (e: Error) => {
      assert.ok(e instanceof KernelCompileError);
      assert.match(e.message, /^gen\.wgsl:2: cannot include "no_such_file\.wgsl": no_such_file/);
      return true;
    },
  );
  await assert.rejects(
    () => compileKernel(gpu, "gen.wgsl", '//! include "../secret.wgsl"\n'),
    /gen\.wgsl:1: cannot include "\.\.\/secret\.wgsl": kernel file/,
  );
});

Deno.test("compile errors point at the file and line the code came from", async () => {
  const gpu = await getGpu();
  // In the including file, after the ~200 spliced lines of quantize_common.wgsl.
  const code = `//! include "quantize_common.wgsl"
@group(0) @binding(0) var<storage, read_write> y: array<f32>;
@compute @workgroup_size(1) fn main() {
  y[0] = div_rn(y[0], 3.0);
  y[1] = undefined_thing;
}
`;
  await assert.rejects(() => compileKernel(gpu, "mapped.wgsl", code), (e: Error) => {
    assert.ok(e instanceof KernelCompileError);
    assert.match(e.message, /^mapped\.wgsl failed to compile:\nmapped\.wgsl:5:10: /);
    assert.match(e.message, /undefined_thing/);
    // The compiler's snippet names the same place, not a line of the spliced text.
    assert.doesNotMatch(e.message, /wgsl:\d{2,}/);
    return true;
  });
  await drainDeviceErrors(gpu);

  // In an included file: compiled directly, so the mapping is checked
  // against the line numbers the compiler really reports.
  const { read } = files({
    "lib.wgsl": "// lib\nfn broken() -> f32 {\n  return missing_value;\n}\n",
    "mid.wgsl": '// mid\n//! include "lib.wgsl"\n',
  });
  const spliced = spliceIncludes(
    "root.wgsl",
    '// root\n//! include "mid.wgsl"\n@compute @workgroup_size(1) fn main() {}\n',
    read,
  );
  gpu.device.pushErrorScope("validation");
  const module = gpu.device.createShaderModule({ label: "root.wgsl", code: spliced.code });
  const info = await module.getCompilationInfo();
  await gpu.device.popErrorScope();
  const errors = info.messages.filter((m) => m.type === "error");
  assert.equal(errors.length, 1);
  assert.equal(errors[0].lineNum, 5); // the spliced line: after 1 of root, 1 of mid, 2 of lib
  const report = describeCompileErrors(spliced, errors);
  assert.match(report, /^lib\.wgsl:3:10: .*missing_value/);
  assert.match(report, /┌─ lib\.wgsl:3:10/);
  assert.doesNotMatch(report, /^\s*5 │/m);
});
