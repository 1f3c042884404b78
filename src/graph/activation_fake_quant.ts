/**
 * Fake quantization of a Linear's input activations during calibration
 * forwards (upstream's quantization-aware calibration, §3.5/§4.11): each
 * Linear's wrapped forward quantizes its input with the input args before
 * the matmul. Which args llmc simulates, and how:
 *
 * - static `tensor` (FP8 / INT8, symmetric or asymmetric): with the scale the
 *   observer holds after the current sample (upstream's pre-forward hook
 *   updates the observer, then the forward quantizes with the updated
 *   scale), one scale per sample mapped onto its token rows;
 * - dynamic `token`, symmetric (FP8_DYNAMIC, W8A8 int8): per-token scales
 *   `amax / (bit_range / 2)` computed on the engine; the scale is formed as
 *   `amax · (1 / (bit_range / 2))` (one f32 rounding different from the
 *   division at most), and an all-zero row gets a tiny nonzero scale, which
 *   leaves its zeros unchanged as upstream's eps does.
 *
 * Other activation args (asymmetric dynamic tokens, dynamic groups, NVFP4's
 * dynamic local groups) are not simulated: calibration forwards see their
 * inputs unquantized, and a warning says so.
 *
 * @module
 */

import type { Engine, Tensor } from "../engine/engine.ts";
import type { QuantizationArgs } from "../quant/args.ts";
import { quantizedRange } from "../quant/qparams.ts";

/** How calibration forwards treat a Linear's input args. */
export type InputSimulation =
  /** Static tensor scales from the observer (running in calibration, final when propagating). */
  | { readonly kind: "static" }
  /** Per-token scales computed on the fly. */
  | { readonly kind: "dynamic_token" }
  /** Not simulated; `reason` says why. */
  | { readonly kind: "none"; readonly reason: string };

/**
 * How llmc simulates quantizing inputs with these args in calibration forwards.
 *
 * @param args a Linear's input activation args
 * @returns the simulation
 * @example
 * ```ts
 * import { inputSimulation } from "./activation_fake_quant.ts";
 * import { presetScheme } from "../quant/presets.ts";
 * inputSimulation(presetScheme("FP8", ["Linear"]).inputActivations!).kind; // "static"
 * inputSimulation(presetScheme("FP8_DYNAMIC", ["Linear"]).inputActivations!).kind; // "dynamic_token"
 * ```
 */
export function inputSimulation(args: QuantizationArgs): InputSimulation {
  if (args.dynamic === false && args.strategy === "tensor") return { kind: "static" };
  if (args.dynamic === true && args.strategy === "token" && args.symmetric) {
    return { kind: "dynamic_token" };
  }
  return {
    kind: "none",
    reason: `${args.dynamic === "local" ? "dynamic local" : args.dynamic ? "dynamic" : "static"} ` +
      `${args.symmetric ? "symmetric" : "asymmetric"} ${args.strategy} inputs`,
  };
}

/**
 * Fake-quantizes `x` with one static scale (and zero point) per token row:
 * row r uses `scale[r]`. Used with each sample's running scale repeated over
 * its tokens, or with one final scale repeated over all rows.
 *
 * @param engine the layer's engine
 * @param x the input `[rows, cols]`
 * @param scale one scale per row
 * @param zeroPoint one zero point per row, or null (symmetric)
 * @param args the input args (static tensor strategy)
 * @returns a new tensor (the layer destroys it)
 * @example
 * ```ts ignore
 * const y = fakeQuantizeRows(tap.engine, x, rowScales, null, args);
 * ```
 */
export function fakeQuantizeRows(
  engine: Engine,
  x: Tensor,
  scale: Float32Array,
  zeroPoint: Float32Array | null,
  args: QuantizationArgs,
): Tensor {
  const rows = x.shape[0];
  const s = engine.upload(scale, [rows]);
  const zp = args.symmetric || zeroPoint === null ? null : engine.upload(zeroPoint, [rows]);
  const y = engine.fakeQuantizeRows(x, s, zp, args);
  // Destroying waits for the recorded work that reads them.
  s.destroy();
  zp?.destroy();
  return y;
}

/** Smallest normal f32: a scale that changes no representable scale it is added to. */
const TINY_SCALE = 2 ** -126;

/**
 * Fake-quantizes `x` per token with symmetric dynamic scales computed on the
 * engine (no readback): `absmax(row) · (1 / (bit_range / 2)) + 2⁻¹²⁶`, each
 * step rounded to float32.
 *
 * @param engine the layer's engine
 * @param x the input `[rows, cols]`
 * @param args symmetric dynamic token args (FP8 or int)
 * @returns a new tensor (the layer destroys it)
 * @example
 * ```ts ignore
 * const y = fakeQuantizeDynamicTokens(tap.engine, x, presetScheme("FP8_DYNAMIC", ["Linear"]).inputActivations!);
 * ```
 */
export function fakeQuantizeDynamicTokens(
  engine: Engine,
  x: Tensor,
  args: QuantizationArgs,
): Tensor {
  const rows = x.shape[0];
  const [qMin, qMax] = quantizedRange(args);
  const matrix = engine.reshape(x, [rows, x.numel / rows]);
  const amax = engine.reduceRows(matrix, "absmax");
  const raw = engine.scale(amax, Math.fround(1 / ((qMax - qMin) / 2)));
  const column = engine.reshape(raw, [rows, 1]);
  const tiny = engine.upload(new Float32Array([TINY_SCALE]), [1]);
  const scale = engine.add(column, tiny);
  const y = engine.fakeQuantizeRows(x, scale, null, args);
  for (const t of [matrix, amax, raw, column, tiny, scale]) t.destroy();
  return y;
}
