/**
 * lm_head in a calibrated pipeline. It sits after the decoder layers, so its
 * input statistics (static input scales) and its GPTQ Hessian come from the
 * final RMSNorm of the last layer's propagated outputs, as upstream's hooks
 * on the last subgraph see them. Without either it is quantized
 * round-to-nearest from its weight alone.
 *
 * @module
 */

import type { HfModel } from "../io/hf_model.ts";
import type { DecoderModel } from "../model/decoder_model.ts";
import { checkGptqWeight } from "../modifiers/gptq/gptq_quantize.ts";
import { quantizeWeight } from "../modifiers/gptq/quantize_weight.ts";
import { computeDTypeOf } from "../modifiers/quantization/linear_plan.ts";
import type { PlannedLinear } from "../modifiers/quantization/linear_plan.ts";
import { qparamsOf } from "../quant/observers.ts";
import { from, last, lastValueFrom } from "../_rxjs.ts";
import type { ActivationCache } from "../graph/activation_cache.ts";
import type { CalibrationBatch } from "../graph/calibration_batches.ts";
import type { LinearResult, ObservedQParams } from "../graph/modifier.ts";
import { globalScaleOfState, observeMinMax } from "../graph/observer_operators.ts";
import { inputNeedsCalibration } from "../modifiers/quantization/quantization_plan.ts";
import { rtnQuantizeLinears } from "../modifiers/quantization/rtn_linears.ts";
import { readSampleMinMax, recordTensorMinMax } from "../graph/sample_statistics.ts";
import type { PendingSampleMinMax } from "../graph/sample_statistics.ts";

/**
 * Whether lm_head needs the last layer's outputs (static or NVFP4 inputs, or GPTQ).
 *
 * @param plan lm_head's plan
 * @param gptq whether a GPTQModifier quantizes it
 * @returns true when its quantization needs calibration data
 * @example
 * ```ts ignore
 * lmHeadNeedsData(combined.lmHead, false); // true for FP8 static on an unignored lm_head
 * ```
 */
export function lmHeadNeedsData(plan: PlannedLinear, gptq: boolean): boolean {
  const s = plan.scheme;
  if (s === null || plan.format === null) return false;
  return (gptq && s.weights !== null) || inputNeedsCalibration(s.inputActivations);
}

/** The GPTQ settings of the modifier quantizing lm_head, or null for round-to-nearest. */
export interface LmHeadGptq {
  readonly blockSize: number;
  readonly dampeningFrac: number;
}

/**
 * Quantizes lm_head.
 *
 * @param model the decoder (on its engine)
 * @param source the checkpoint
 * @param plan lm_head's plan (scheme and format set)
 * @param modifier the modifier's type
 * @param gptq GPTQ settings, or null for round-to-nearest
 * @param batches calibration batches
 * @param hidden the last layer's outputs per batch, when lm_head needs data
 * @returns lm_head's result
 * @example
 * ```ts ignore
 * const r = await quantizeLmHead(model, hf, lmHeadPlan, "QuantizationModifier", null, batches, cache);
 * ```
 */
export async function quantizeLmHead(
  model: DecoderModel,
  source: HfModel,
  plan: PlannedLinear,
  modifier: string,
  gptq: LmHeadGptq | null,
  batches: readonly CalibrationBatch[],
  hidden: ActivationCache | null,
): Promise<LinearResult> {
  const t0 = performance.now();
  const scheme = plan.scheme!;
  const dtype = computeDTypeOf(plan.dtype, plan.weightTensor);
  const values = await source.readF32(plan.weightTensor);
  const inputArgs = scheme.inputActivations;
  const observeInputs = inputNeedsCalibration(inputArgs);
  const useGptq = gptq !== null && scheme.weights !== null;
  const engine = model.engine;
  const hessian = useGptq ? engine.secondOrder.runningHessian(plan.shape[1]) : null;
  try {
    let input: ObservedQParams | null = null;
    if ((observeInputs || useGptq) && hidden !== null) {
      const pending: PendingSampleMinMax[] = [];
      for (const b of batches) {
        const rows = b.sequences * b.seqLen;
        const x = engine.upload(await hidden.get(b.index), [
          rows,
          model.config.hiddenSize,
        ]);
        const normed = await model.finalNorm(x);
        x.destroy();
        hessian?.add(normed, b.sequences);
        if (observeInputs) pending.push(recordTensorMinMax(engine, normed, b.sequences, b.seqLen));
        // Started now; a failure surfaces at the next read.
        engine.flush().catch(() => {});
        normed.destroy();
      }
      if (observeInputs) {
        const observations = (await readSampleMinMax(engine, pending)).flat();
        const state = await lastValueFrom(
          from(observations).pipe(observeMinMax(inputArgs!, dtype), last()),
        );
        input = inputArgs!.dynamic === "local"
          ? { globalScale: globalScaleOfState(state, dtype) }
          : (() => {
            const qp = qparamsOf(state, inputArgs!, { dtype });
            return {
              scale: qp.scale,
              zeroPoint: inputArgs!.symmetric ? null : qp.zeroPoint,
              shape: [1],
            };
          })();
      }
    }
    // What every outcome says about the module besides its weight.
    const about = {
      module: plan.name,
      modifier,
      scheme,
      format: plan.format,
      shape: plan.shape,
      input,
    };
    if (scheme.weights === null) {
      return { ...about, weight: values, weightQParams: null, forwardWeight: values, metric: null };
    }
    const args = scheme.weights;
    if (hessian !== null) {
      // quantizeWeight on the engine's second-order ops (two device polls on WebGPU).
      checkGptqWeight(values, plan.shape, hessian.columns, args, plan.name);
      const r = await quantizeWeight(engine.secondOrder, values, plan.shape, hessian, args, {
        blockSize: gptq!.blockSize,
        dampeningFrac: gptq!.dampeningFrac,
        where: plan.name,
      });
      return {
        ...about,
        weight: r.weight,
        weightQParams: {
          scale: r.scale,
          zeroPoint: r.zeroPoint,
          globalScale: r.globalScale ?? null,
          gIdx: r.gIdx ?? null,
        },
        forwardWeight: r.weight,
        metric: { error: r.loss, errorKind: "gptq_loss", seconds: (performance.now() - t0) / 1000 },
      };
    }
    const [rtn] = rtnQuantizeLinears(
      [{ name: plan.name, values, shape: plan.shape, scheme, format: null, dtype }],
      { fakeQuantize: true },
    );
    return {
      ...about,
      weight: values,
      weightQParams: rtn.qparams,
      forwardWeight: rtn.fakeQuantized!,
      metric: {
        error: rtn.relativeError!,
        errorKind: "relative_weight_mse",
        seconds: (performance.now() - t0) / 1000,
      },
    };
  } finally {
    hessian?.destroy();
  }
}
