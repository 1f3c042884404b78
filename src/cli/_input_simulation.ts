/**
 * The activation quantization a serving engine applies to a checkpoint's
 * Linear inputs, as a transform for `llmc ppl --simulate-inputs`: dynamic
 * per-token args (W8A8 INT8, FP8_DYNAMIC) are fake-quantized per token from
 * each token's own absmax, static per-tensor args with the checkpoint's
 * `input_scale` (and `input_zero_point`).
 *
 * @module
 */

import type { CompressedCheckpoint } from "../compress/compressed_checkpoint.ts";
import { fakeQuantizeDynamicTokens, fakeQuantizeRows } from "../graph/activation_fake_quant.ts";
import type { LinearInputTransform } from "../model/taps.ts";
import { UsageError } from "./flags.ts";

/**
 * The input transform of a checkpoint, or null when its scheme quantizes no Linear input.
 *
 * @param ckpt the checkpoint
 * @returns the transform
 * @throws {UsageError} for input args llmc cannot simulate (static per-token/group, dynamic local)
 * @example
 * ```ts ignore
 * const transform = await inputSimulationOf(ckpt);
 * ```
 */
export async function inputSimulationOf(
  ckpt: CompressedCheckpoint,
): Promise<LinearInputTransform | null> {
  const statics = new Map<string, { scale: number; zeroPoint: number }>();
  let any = false;
  for (let k = 0; k < ckpt.config.numHiddenLayers; k++) {
    for (
      const l of [
        "self_attn.q_proj",
        "self_attn.o_proj",
        "mlp.gate_proj",
        "mlp.down_proj",
      ]
    ) {
      const module = `model.layers.${k}.${l}`;
      const args = ckpt.schemeOf(module)?.inputActivations ?? null;
      if (args === null) continue;
      any = true;
      if (args.dynamic === true && args.strategy === "token") continue;
      if (args.dynamic === false && args.strategy === "tensor") {
        const scale = (await ckpt.readF32(`${module}.input_scale`))[0];
        const zeroPoint = ckpt.has(`${module}.input_zero_point`)
          ? (await ckpt.readF32(`${module}.input_zero_point`))[0]
          : 0;
        statics.set(module, { scale, zeroPoint });
        continue;
      }
      throw new UsageError(
        `${module}: cannot simulate input activations with strategy ${args.strategy}, ` +
          `dynamic ${args.dynamic}`,
      );
    }
  }
  if (!any) return null;
  return (modules, x, engine) => {
    const args = ckpt.schemeOf(modules[0])?.inputActivations ?? null;
    if (args === null) return x;
    if (args.dynamic === true) return fakeQuantizeDynamicTokens(engine, x, args);
    const s = statics.get(modules[0])!;
    const rows = x.shape[0];
    return fakeQuantizeRows(
      engine,
      x,
      new Float32Array(rows).fill(s.scale),
      new Float32Array(rows).fill(s.zeroPoint),
      args,
    );
  };
}
