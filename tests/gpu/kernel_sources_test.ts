/**
 * What every WGSL kernel in kernels/ must avoid because of its cost on
 * software adapters, checked on the sources.
 *
 * Workgroup arrays: Mesa's GL path (WGSL → GLSL, then Mesa's GLSL compiler
 * and llvmpipe) compiles a kernel with a large workgroup array very slowly:
 * cholesky_diagonal_block.wgsl with a 4096-float array took 60–75 s, with a
 * 256-float one 0.4 s (measured on llvmpipe, Mesa 22.3), and a fresh
 * machine's first GPTQ run on the WebGPU engine spent most of its time
 * there. No kernel may declare a workgroup array of more than
 * MAX_WORKGROUP_ELEMENTS elements (nested arrays multiply).
 */

import assert from "node:assert/strict";

const KERNELS = new URL("../../kernels/", import.meta.url);

/** The largest workgroup array a kernel may declare, in elements. */
const MAX_WORKGROUP_ELEMENTS = 1024;

/** A workgroup variable's name and its element count (1 for a scalar, vector or struct). */
interface WorkgroupVariable {
  name: string;
  elements: number;
}

/** Elements of a WGSL type: the product of its array sizes (array<array<T, 17>, 16>: 272). */
function elementCount(type: string, size: (token: string) => number): number {
  if (!type.startsWith("array<") || !type.endsWith(">")) return 1;
  const inner = type.slice("array<".length, -1);
  // The size follows the last comma outside nested angle brackets.
  let depth = 0;
  let comma = -1;
  for (let i = 0; i < inner.length; i++) {
    if (inner[i] === "<") depth++;
    else if (inner[i] === ">") depth--;
    else if (inner[i] === "," && depth === 0) comma = i;
  }
  if (comma < 0) return 1; // a runtime-sized array cannot be a workgroup variable
  return elementCount(inner.slice(0, comma).trim(), size) * size(inner.slice(comma + 1).trim());
}

/**
 * The workgroup variables of a WGSL source, with their array sizes resolved
 * through the source's `const` and `override` declarations (an override by
 * its default).
 */
function workgroupVariables(source: string, file: string): WorkgroupVariable[] {
  const constants = new Map<string, number>();
  for (const m of source.matchAll(/\b(?:const|override)\s+(\w+)\s*:\s*\w+\s*=\s*(\d+)u?\s*;/g)) {
    constants.set(m[1], Number(m[2]));
  }
  const out: WorkgroupVariable[] = [];
  for (const m of source.matchAll(/var<workgroup>\s+(\w+)\s*:\s*([^;]+);/g)) {
    const size = (token: string) => {
      const n = /^\d+u?$/.test(token) ? parseInt(token) : constants.get(token);
      if (n === undefined) {
        throw new Error(
          `${file}: workgroup array ${m[1]}: size '${token}' is not a known constant`,
        );
      }
      return n;
    };
    out.push({ name: m[1], elements: elementCount(m[2].trim(), size) });
  }
  return out;
}

Deno.test("workgroupVariables finds sizes through constants and nested arrays", () => {
  const source = `
    const NB: u32 = 64u;
    override WG: u32 = 256u;
    var<workgroup> t: array<f32, 4096>;
    var<workgroup> partial: array<f32, WG>;
    var<workgroup> tile: array<array<u32, 17>, 16>;
    var<workgroup> hist: array<atomic<u32>, NB>;
    var<workgroup> count: atomic<u32>;
  `;
  assert.deepEqual(workgroupVariables(source, "x.wgsl"), [
    { name: "t", elements: 4096 },
    { name: "partial", elements: 256 },
    { name: "tile", elements: 272 },
    { name: "hist", elements: 64 },
    { name: "count", elements: 1 },
  ]);
  assert.throws(
    () => workgroupVariables("var<workgroup> t: array<f32, N>;", "y.wgsl"),
    /y\.wgsl: workgroup array t: size 'N' is not a known constant/,
  );
});

Deno.test("no kernel declares a workgroup array large enough to stall Mesa's GL compiler", async () => {
  let files = 0;
  const tooLarge: string[] = [];
  for await (const entry of Deno.readDir(KERNELS)) {
    if (!entry.isFile || !entry.name.endsWith(".wgsl")) continue;
    files++;
    const source = await Deno.readTextFile(new URL(entry.name, KERNELS));
    for (const v of workgroupVariables(source, entry.name)) {
      if (v.elements > MAX_WORKGROUP_ELEMENTS) {
        tooLarge.push(`${entry.name}: ${v.name} has ${v.elements} elements`);
      }
    }
  }
  assert.ok(files > 20, `expected the kernels in ${KERNELS.pathname}, found ${files} files`);
  assert.deepEqual(tooLarge, [], `more than ${MAX_WORKGROUP_ELEMENTS} elements`);
});
