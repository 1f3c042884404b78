/**
 * `deno task bench`: runs every benchmark script in bench/ one after another,
 * each in its own process, and prints their tables and JSON lines as they come.
 * Pass names to run a subset: `deno task bench matmul forward`.
 *
 * @module
 */

const dir = new URL("./", import.meta.url).pathname;
const filters = Deno.args;
const scripts: string[] = [];
for await (const e of Deno.readDir(dir)) {
  if (e.isFile && e.name.endsWith("_bench.ts")) scripts.push(e.name);
}
scripts.sort();
let failed = 0;
for (const name of scripts) {
  if (filters.length && !filters.some((f) => name.includes(f))) continue;
  console.log(`\n### ${name}`);
  const { code } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${dir}${name}`],
    stdout: "inherit",
    stderr: "inherit",
  }).output();
  if (code !== 0) {
    failed++;
    console.log(`${name} exited with code ${code}`);
  }
}
Deno.exit(failed ? 1 : 0);
