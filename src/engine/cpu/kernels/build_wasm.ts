/**
 * `deno task build-wasm`: rebuilds the CPU engine's WebAssembly kernels from
 * `gemm.c` with clang, writing `gemm_relaxed.wasm` (f32x4.relaxed_madd) and
 * `gemm_simd.wasm` (plain simd128) beside it. The `.wasm` files are committed,
 * so only people who change the C need clang: on Debian,
 * `apt-get install -y clang-16 lld-16` (the linker is `wasm-ld-16`).
 *
 * Set `CLANG` to pick a compiler other than the first of clang-16, clang-17,
 * clang-18, clang found on PATH.
 *
 * @module
 */

const here = new URL("./", import.meta.url);
const source = new URL("gemm.c", here).pathname;

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

const VARIANTS: Record<string, string[]> = {
  "gemm_relaxed.wasm": ["-mrelaxed-simd"],
  "gemm_simd.wasm": [],
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
for (const [name, flags] of Object.entries(VARIANTS)) {
  const out = new URL(name, here).pathname;
  const tmp = `${out}.tmp`;
  const { success, stderr } = new Deno.Command(clang, {
    args: [...COMMON, ...flags, "-o", tmp, source],
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
