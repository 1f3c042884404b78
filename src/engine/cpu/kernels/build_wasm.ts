/**
 * `deno task build-wasm`: rebuilds the CPU engine's WebAssembly kernels from
 * `gemm.c` with clang, writing `gemm_relaxed.wasm` (f32x4.relaxed_madd) and
 * `gemm_simd.wasm` (plain simd128) beside it, and `block_transform.wasm`
 * (float64 rotations, f64x2) from `block_transform.c`. The `.wasm` files are committed,
 * so only people who change the C need clang: on Debian,
 * `apt-get install -y clang-16 lld-16` (the linker is `wasm-ld-16`).
 *
 * Set `CLANG` to pick a compiler other than the first of clang-16, clang-17,
 * clang-18, clang found on PATH.
 *
 * @module
 */

const here = new URL("./", import.meta.url);

/** Flags shared by both builds; see gemm.c for why the module has no stack or data. */
const COMMON = [
  "--target=wasm32",
  "-O3",
  "-msimd128",
  "-matomics",
  "-mbulk-memory",
  "-nostdlib",
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
  "block_transform.wasm": { source: "block_transform.c", flags: ["-ffp-contract=off"] },
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
    args: [...COMMON, ...flags, "-o", tmp, new URL(source, here).pathname],
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
