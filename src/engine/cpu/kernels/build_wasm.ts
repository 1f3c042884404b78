/**
 * `deno task build-wasm`: rebuilds the CPU engine's kernels. From `gemm.c`
 * with clang: `gemm_relaxed.wasm` (f32x4.relaxed_madd) and `gemm_simd.wasm`
 * (plain simd128); from `block_transform.c`: `block_transform.wasm` (float64
 * rotations, f64x2). And from `gemm.c` with gcc on x86-64 Linux:
 * `gemm_x86_64.so`, the native AVX2 + FMA build (see _gemm_native.ts). The
 * built files are committed, so only people who change the C need the
 * compilers: on Debian, `apt-get install -y clang-16 lld-16 gcc` (the wasm
 * linker is `wasm-ld-16`).
 *
 * Set `CLANG` to pick a compiler other than the first of clang-16, clang-17,
 * clang-18, clang found on PATH, and `CC` for the native build (default gcc).
 *
 * @module
 */

import { sourceStamp, STAMPED_SOURCES } from "../_kernel_stamp.ts";

const here = new URL("./", import.meta.url);

/** Each source's stamp (see _kernel_stamp.ts), compiled into its builds as LLMC_KERNEL_STAMP. */
const stamps: Record<string, number> = {};
for (const { source, files } of STAMPED_SOURCES) {
  stamps[source] = await sourceStamp(files.map((f) => Deno.readTextFileSync(new URL(f, here))));
}
const stampFlag = (source: string) => `-DLLMC_KERNEL_STAMP=0x${stamps[source].toString(16)}u`;

/** Flags shared by both builds; see gemm.c for why the module has no stack or data. */
const COMMON = [
  "--target=wasm32",
  "-O3",
  "-msimd128",
  "-matomics",
  "-mbulk-memory",
  "-nostdlib",
  // No contraction of a multiply and an add into a fused one the source does
  // not write: the GPTQ column block must round as its TypeScript twin does.
  "-ffp-contract=off",
  // sqrt as the instruction (the kernels have no libm to set errno).
  "-fno-math-errno",
  "-Wall",
  "-Werror",
  "-Wl,--no-entry",
  "-Wl,--import-memory",
  "-Wl,--shared-memory",
  "-Wl,--max-memory=4294967296",
  "-Wl,-z,stack-size=0",
  "-Wl,--strip-all",
];

/** Output module → its source and extra flags. */
const VARIANTS: Record<string, { source: string; flags: string[] }> = {
  "gemm_relaxed.wasm": { source: "gemm.c", flags: ["-mrelaxed-simd"] },
  "gemm_simd.wasm": { source: "gemm.c", flags: [] },
  // float64 block transforms: no relaxed SIMD and no contraction, so every sum
  // rounds as the TypeScript reference's does (see block_transform.c).
  "block_transform.wasm": { source: "block_transform.c", flags: [] },
};

function findClang(): string {
  const fromEnv = Deno.env.get("CLANG");
  if (fromEnv) return fromEnv;
  for (const name of ["clang-16", "clang-17", "clang-18", "clang"]) {
    try {
      const { success } = new Deno.Command(name, { args: ["--version"], stdout: "null" })
        .outputSync();
      if (success) return name;
    } catch {
      // not installed under this name; try the next
    }
  }
  throw new Error(
    "build-wasm: no clang found (tried clang-16, clang-17, clang-18, clang); " +
      "install one with `apt-get install -y clang-16 lld-16` or set CLANG",
  );
}

const clang = findClang();
for (const [name, { source, flags }] of Object.entries(VARIANTS)) {
  const out = new URL(name, here).pathname;
  const tmp = `${out}.tmp`;
  const { success, stderr } = new Deno.Command(clang, {
    args: [...COMMON, ...flags, stampFlag(source), "-o", tmp, new URL(source, here).pathname],
    stderr: "piped",
  }).outputSync();
  if (!success) {
    throw new Error(
      `build-wasm: ${clang} failed for ${name}:\n${new TextDecoder().decode(stderr)}`,
    );
  }
  // Validate before replacing the committed module.
  new WebAssembly.Module(Deno.readFileSync(tmp));
  Deno.renameSync(tmp, out);
  console.log(`${name}: ${Deno.statSync(out).size} bytes (${clang})`);
}

// The native library: no libc (the kernels call nothing), hidden symbols but
// the two entry points, and no contraction of separate multiplies and adds,
// so it rounds as the relaxed WebAssembly build does.
const NATIVE = [
  "-O3",
  "-shared",
  "-fPIC",
  "-nostdlib",
  "-ffp-contract=off",
  "-fno-math-errno",
  "-fno-tree-loop-distribute-patterns",
  "-fvisibility=hidden",
  "-Wall",
  "-Werror",
  "-s",
];
if (Deno.build.os === "linux" && Deno.build.arch === "x86_64") {
  const cc = Deno.env.get("CC") ?? "gcc";
  const out = new URL("gemm_x86_64.so", here).pathname;
  const tmp = `${out}.tmp`;
  const { success, stderr } = new Deno.Command(cc, {
    args: [...NATIVE, stampFlag("gemm.c"), "-o", tmp, new URL("gemm.c", here).pathname],
    stderr: "piped",
  }).outputSync();
  if (!success) {
    throw new Error(
      `build-wasm: ${cc} failed for gemm_x86_64.so:\n${new TextDecoder().decode(stderr)}`,
    );
  }
  Deno.renameSync(tmp, out);
  console.log(`gemm_x86_64.so: ${Deno.statSync(out).size} bytes (${cc})`);
} else {
  console.log(
    `gemm_x86_64.so: not rebuilt (needs x86-64 Linux, this is ${Deno.build.os}/${Deno.build.arch})`,
  );
}

// The stamps the loaders expect, written last: only once every build above has them.
const stampsModule = new URL("../_kernel_stamps.ts", here).pathname;
Deno.writeTextFileSync(
  `${stampsModule}.tmp`,
  `// Generated by \`deno task build-wasm\` (kernels/build_wasm.ts): the stamp of each kernel source\n` +
    `// the committed builds were compiled from (see _kernel_stamp.ts). Do not edit.\n\n` +
    `/** Source file → the first 32 bits of its SHA-256 (with its headers). */\n` +
    `export const KERNEL_STAMPS = {\n` +
    Object.entries(stamps).map(([f, v]) => `  "${f}": 0x${v.toString(16).padStart(8, "0")},\n`)
      .join("") +
    `} as const;\n`,
);
Deno.renameSync(`${stampsModule}.tmp`, stampsModule);
console.log(`_kernel_stamps.ts: ${JSON.stringify(stamps)}`);
