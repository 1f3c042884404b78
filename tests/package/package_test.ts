/**
 * The package as JSR sees it: `deno publish --dry-run` (slow types, license,
 * the file list) and `deno doc --lint mod.ts` (every export documented, no
 * public type referring to a private one). Both run in child processes, and
 * any error they print fails the test.
 *
 * @module
 */

import assert from "node:assert/strict";

const ROOT = decodeURIComponent(new URL("../../", import.meta.url).pathname);

// deno-lint-ignore no-control-regex
const ANSI = /\x1b\[[0-9;]*m/g;

async function deno(args: string[]): Promise<{ code: number; output: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const dec = new TextDecoder();
  return { code, output: (dec.decode(stdout) + dec.decode(stderr)).replace(ANSI, "") };
}

Deno.test("deno publish --dry-run succeeds and publishes only the library", async () => {
  // --allow-dirty: a developer's checkout has uncommitted files; CI's clone does not.
  const { code, output } = await deno(["publish", "--dry-run", "--allow-dirty"]);
  assert.equal(code, 0, `deno publish --dry-run failed:\n${output}`);
  assert.match(output, /Dry run complete/, output);
  const messages = output.split("\n").filter((line) => !/^\s*file:\/\/\//.test(line)).join("\n");
  assert.doesNotMatch(
    messages,
    /^\s*(error|warning)\b|\b(error|warning)\[/im,
    `publish reported a problem:\n${output}`,
  );
  const files = [...output.matchAll(/file:\/\/\/\S+/g)].map((m) =>
    decodeURIComponent(new URL(m[0]).pathname).slice(ROOT.length)
  );
  for (const needed of ["mod.ts", "LICENSE", "README.md", "deno.json", "kernels/matmul_f32.wgsl"]) {
    assert.ok(files.includes(needed), `${needed} is not published; files:\n${files.join("\n")}`);
  }
  const unwanted = files.filter((f) =>
    /^(tests|bench|notebooks|node_modules|out)\//.test(f) || /_test\.ts$/.test(f) ||
    /\.ipynb$/.test(f) || ["package.json", "package-lock.json", "deno.lock"].includes(f)
  );
  assert.deepEqual(unwanted, [], "files that must not be published");
});

/**
 * The one diagnostic tolerated: rxjs's `Observable`, which `GraphStreams`
 * exposes, is reported as a private type because Deno treats a type from an
 * npm package (a file: URL in its npm cache) like a local one
 * (denoland/deno#27364; the fix, denoland/deno#34339, covers jsr:/https:
 * modules only). The type is rxjs's public API, so there is nothing to
 * document on our side. Anything else fails.
 */
function isToleratedNpmTypeRef(block: string): boolean {
  return /^error\[private-type-ref\]: public type '[^']+' references private type 'Observable'/
    .test(block) &&
    /registry\.npmjs\.org\/rxjs\/|this is the referenced type/.test(block) &&
    /export declare class Observable<T>/.test(block);
}

Deno.test("deno doc --lint mod.ts reports nothing but the npm Observable false positive", async () => {
  const { code, output } = await deno(["doc", "--lint", "mod.ts"]);
  const blocks = output.split(/\n(?=error(?:\[|:))/).map((b) => b.trim()).filter((b) =>
    b.startsWith("error[")
  );
  const real = blocks.filter((b) => !isToleratedNpmTypeRef(b));
  assert.deepEqual(real, [], `deno doc --lint found problems:\n${output}`);
  if (blocks.length === 0) assert.equal(code, 0, output);
  // The tolerated reference is rxjs's Observable in the stream fields, and only there.
  for (const b of blocks) assert.match(b, /GraphStreams\.prototype\.events\$/);
});
