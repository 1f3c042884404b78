/**
 * What every WGSL kernel in kernels/ must avoid because of its cost on
 * software adapters, checked on the sources.
 *
 * Workgroup memory: Mesa's GL path (WGSL → GLSL, then Mesa's GLSL compiler
 * and llvmpipe) compiles a kernel with a large workgroup array very slowly.
 * Measured on llvmpipe (Mesa 22.3, GL) from an empty shader cache: a
 * trivial kernel with a 512-float workgroup array 0.6 s, with 1024 floats
 * 2.2 s; cholesky_diagonal_block.wgsl with a 256-float array 0.4 s, with
 * 256 mat4x4 (4096 floats) 8.5 s, with 4096 floats 60–75 s, which a fresh
 * machine's first GPTQ run on the WebGPU engine spent most of its time on.
 * So the scalars (f32, u32, …; a vec4 counts 4, a mat4x4 16) of all the
 * workgroup variables of one kernel file may add up to at most
 * MAX_WORKGROUP_SCALARS.
 */

import assert from "node:assert/strict";

const KERNELS = new URL("../../kernels/", import.meta.url);

/** The most workgroup-memory scalars a kernel file may declare. */
const MAX_WORKGROUP_SCALARS = 512;

const SCALARS = new Set(["f32", "f16", "u32", "i32", "bool"]);

/** Splits `a, b<c, d>, e` at its top-level commas. */
function topLevelParts(text: string): string[] {
  const parts: string[] = [];
  let depth = 0;
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    if (text[i] === "<") depth++;
    else if (text[i] === ">") depth--;
    else if (text[i] === "," && depth === 0) {
      parts.push(text.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(text.slice(start).trim());
  return parts.filter((p) => p !== "");
}

/**
 * The scalars of a WGSL type written in `source`: arrays multiply, vectors
 * count their components, matrices columns × rows, structs add their
 * fields; aliases and structs are looked up in `source`, sizes through its
 * `const` and `override` declarations (an override by its default).
 *
 * @throws {Error} naming the file and variable for a type or size it cannot resolve
 */
function scalarCount(type: string, source: string, where: string): number {
  const t = type.trim();
  if (SCALARS.has(t)) return 1;
  let m = /^atomic\s*<\s*(\w+)\s*>$/.exec(t);
  if (m) return scalarCount(m[1], source, where);
  m = /^vec([234])(?:[fhiu]|\s*<\s*\w+\s*>)$/.exec(t);
  if (m) return Number(m[1]);
  m = /^mat([234])x([234])(?:[fh]|\s*<\s*\w+\s*>)$/.exec(t);
  if (m) return Number(m[1]) * Number(m[2]);
  m = /^array\s*<(.*)>$/s.exec(t);
  if (m) {
    const parts = topLevelParts(m[1]);
    if (parts.length !== 2) throw new Error(`${where}: '${t}' is not a fixed-size array`);
    return scalarCount(parts[0], source, where) * sizeOf(parts[1], source, where);
  }
  const alias = new RegExp(`\\balias\\s+${t}\\s*=\\s*([^;]+);`).exec(source);
  if (alias) return scalarCount(alias[1], source, where);
  const struct = new RegExp(`\\bstruct\\s+${t}\\s*\\{([^}]*)\\}`).exec(source);
  if (struct) {
    return topLevelParts(struct[1]).reduce((sum, field) => {
      const colon = field.indexOf(":");
      return sum + scalarCount(field.slice(colon + 1), source, where);
    }, 0);
  }
  throw new Error(`${where}: unknown type '${t}'`);
}

/** An array size: a literal, or a `const` / `override` of `source` (its default). */
function sizeOf(token: string, source: string, where: string): number {
  if (/^\d+[ui]?$/.test(token)) return parseInt(token);
  const m = new RegExp(
    `\\b(?:const|override)\\s+${token}\\s*(?::\\s*\\w+)?\\s*=\\s*(\\d+)[ui]?\\s*;`,
  )
    .exec(source);
  if (!m) throw new Error(`${where}: size '${token}' is not a known constant`);
  return Number(m[1]);
}

/** Each workgroup variable of a WGSL source with its scalar count. */
function workgroupVariables(
  source: string,
  file: string,
): Array<{ name: string; scalars: number }> {
  return [...source.matchAll(/\bvar\s*<\s*workgroup\s*>\s*(\w+)\s*:\s*([^;]+);/g)].map((m) => ({
    name: m[1],
    scalars: scalarCount(m[2], source, `${file}: workgroup variable ${m[1]}`),
  }));
}

Deno.test("workgroupVariables counts scalars through constants, vectors, matrices, aliases and structs", () => {
  const source = `
    const NB: u32 = 64u;
    override WG: u32 = 256u;
    alias Block = array<f32, 4096>;
    struct Pair { lo: vec2<f32>, hi: u32 }
    var<workgroup> t: array<f32, 4096>;
    var<workgroup> partial: array<f32, WG>;
    var <workgroup> tile: array<array<u32, 17>, 16>;
    var<workgroup> hist: array<atomic<u32>, NB>;
    var<workgroup> count: atomic<u32>;
    var<workgroup> mats: array<mat4x4<f32>, 256>;
    var<workgroup> quads: array<vec4f, 1024>;
    var<workgroup> block: Block;
    var<workgroup> pairs: array<Pair, 8>;
  `;
  assert.deepEqual(workgroupVariables(source, "x.wgsl"), [
    { name: "t", scalars: 4096 },
    { name: "partial", scalars: 256 },
    { name: "tile", scalars: 272 },
    { name: "hist", scalars: 64 },
    { name: "count", scalars: 1 },
    { name: "mats", scalars: 4096 },
    { name: "quads", scalars: 4096 },
    { name: "block", scalars: 4096 },
    { name: "pairs", scalars: 24 },
  ]);
  assert.throws(
    () => workgroupVariables("var<workgroup> t: array<f32, N>;", "y.wgsl"),
    /y\.wgsl: workgroup variable t: size 'N' is not a known constant/,
  );
  assert.throws(
    () => workgroupVariables("var<workgroup> t: array<Mystery, 4>;", "z.wgsl"),
    /z\.wgsl: workgroup variable t: unknown type 'Mystery'/,
  );
});

Deno.test("no kernel declares enough workgroup memory to stall Mesa's GL compiler", async () => {
  let files = 0;
  const tooLarge: string[] = [];
  for await (const entry of Deno.readDir(KERNELS)) {
    if (!entry.isFile || !entry.name.endsWith(".wgsl")) continue;
    files++;
    const source = await Deno.readTextFile(new URL(entry.name, KERNELS));
    const variables = workgroupVariables(source, entry.name);
    const scalars = variables.reduce((sum, v) => sum + v.scalars, 0);
    if (scalars > MAX_WORKGROUP_SCALARS) {
      tooLarge.push(
        `${entry.name}: ${scalars} scalars (${
          variables.map((v) => `${v.name} ${v.scalars}`).join(", ")
        })`,
      );
    }
  }
  assert.ok(files > 20, `expected the kernels in ${KERNELS.pathname}, found ${files} files`);
  assert.deepEqual(tooLarge, [], `more than ${MAX_WORKGROUP_SCALARS} workgroup scalars`);
});
