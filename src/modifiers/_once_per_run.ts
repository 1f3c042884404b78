/**
 * Notes a layer modifier says once per run: the same condition (a skipped
 * mapping, a rescaled router) usually holds in every layer of the same
 * structure, so each note is said the first time it occurs, on whichever
 * layer that is. Notes are keyed on their text with the layer index taken
 * out, not on the layer: an MoE model whose first layers are dense
 * (`mlp_only_layers`, `decoder_sparse_step`) still shows its sparse layers' notes.
 *
 * @module
 */

import type { GraphEventSink } from "../graph/events.ts";

/**
 * A warning function that says each note once per run.
 *
 * @param said the notes said so far in this run (one set per modifier and run)
 * @param emit where warnings go (the layer's event sink)
 * @returns a function taking a note's text; it emits the note the first time its text
 *   (with `layers.<k>.` read as any layer) is given, and ignores it afterwards
 * @example
 * ```ts
 * import { oncePerRun } from "./_once_per_run.ts";
 * const said = new Set<string>();
 * const seen: string[] = [];
 * const sink = (e: { type: string; message?: string }) => seen.push(e.message ?? "");
 * oncePerRun(said, sink)("skipping model.layers.1.mlp.up_proj");
 * oncePerRun(said, sink)("skipping model.layers.2.mlp.up_proj");
 * console.assert(seen.length === 1);
 * ```
 */
export function oncePerRun(said: Set<string>, emit: GraphEventSink): (message: string) => void {
  return (message) => {
    const key = message.replace(/layers\.\d+\./g, "layers.*.");
    if (said.has(key)) return;
    said.add(key);
    emit({
      type: "warning",
      message: `${message} (said once per run, for the first layer it applies to)`,
    });
  };
}
