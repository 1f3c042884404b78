/**
 * Runs a bench script again in a child process (so its peak RSS is its own)
 * and returns the JSON object on the last line the child prints. A failing
 * child's output is printed and the bench exits with its code.
 *
 * @module
 */

/**
 * Runs `deno run -A <script> --child <args>` and parses its last stdout line.
 *
 * @param script the bench's own `import.meta.url`
 * @param args the flags after `--child`
 * @returns the parsed last line
 * @example
 * ```ts ignore
 * const run = await runBenchChild<{ peakRssBytes: number }>(import.meta.url, ["--out", dir]);
 * ```
 */
export async function runBenchChild<T>(script: string, args: readonly string[]): Promise<T> {
  const child = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL(script).pathname, "--child", ...args],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const text = new TextDecoder().decode(child.stdout).trim();
  if (child.code !== 0) {
    console.error(text);
    Deno.exit(child.code);
  }
  return JSON.parse(text.split("\n").at(-1)!) as T;
}
