/**
 * The `llmc` command line: `deno task llmc <command> [flags]`.
 *
 * Commands load lazily so that `llmc ppl` does not pay for compression code.
 *
 * @module
 */

import type { CliCommand } from "./command.ts";
import { LlmcError } from "../errors.ts";

const COMMANDS: Record<string, () => Promise<{ command: CliCommand }>> = {
  demo: () => import("./demo.ts"),
  oneshot: () => import("./oneshot.ts"),
  "model-free-ptq": () => import("./model_free_ptq.ts"),
  ppl: () => import("./ppl.ts"),
  generate: () => import("./generate.ts"),
};

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === "--help" || name === "-h" || name === "help") {
    console.log("usage: llmc <command> [flags]\n\ncommands:");
    for (const [key, load] of Object.entries(COMMANDS)) {
      const { command } = await load();
      console.log(`  ${key.padEnd(16)} ${command.summary}`);
    }
    return name ? 0 : 2;
  }
  const load = COMMANDS[name];
  if (!load) {
    console.error(
      `llmc: unknown command '${name}'; expected one of: ${Object.keys(COMMANDS).join(", ")}`,
    );
    return 2;
  }
  const { command } = await load();
  try {
    return await command.run(rest);
  } catch (e) {
    if (e instanceof LlmcError) {
      console.error(`llmc ${name}: ${e.message}`);
      return 1;
    }
    throw e;
  }
}

Deno.exit(await main(Deno.args));
