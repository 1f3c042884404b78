/**
 * The `llmc` command line: `deno task llmc <command> [flags]`.
 *
 * Commands load lazily so that `llmc ppl` does not pay for compression code.
 *
 * @module
 */

import type { CliCommand } from "./command.ts";
import { LlmcError } from "../errors.ts";
import { setSharedPoolWorkers } from "../engine/cpu/gemm.ts";

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

// The process always ends with Deno.exit (an uncaught error ends it too), so the CPU kernels'
// pool threads may be web Workers, which start ~50 ms sooner than node:worker_threads ones.
setSharedPoolWorkers("web");
Deno.exit(await main(Deno.args));
