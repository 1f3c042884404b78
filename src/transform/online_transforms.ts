/**
 * Guards llmc's forward against checkpoints whose `transform_config` asks
 * for online transforms (R3, R4, QuIP's u/v: locations `input`, `output`,
 * `q_attn`, `k_cache`). Their weights were fused with the inverse, so
 * running them without the online half gives a different model; llmc's
 * forward does not apply online transforms yet, so it refuses them.
 *
 * @module
 */

import type { ModelConfig } from "../io/model_config.ts";
import { TransformError } from "./errors.ts";

const FUSED = new Set(["weight_input", "weight_output"]);

/**
 * The online applications a config's `transform_config` lists, as
 * `"<group>: <location> on <targets>"`.
 *
 * @param config the model config (its raw `quantization_config.transform_config` is read)
 * @returns one line per online application; empty without a transform_config
 * @example
 * ```ts ignore
 * onlineTransforms(hf.config); // ["R4: input on re:.*down_proj$"]
 * ```
 */
export function onlineTransforms(config: ModelConfig): string[] {
  const qc = config.raw.quantization_config as Record<string, unknown> | undefined;
  const tc = qc?.transform_config as Record<string, unknown> | undefined;
  const groups = tc?.config_groups as Record<string, { apply?: unknown }> | undefined;
  const out: string[] = [];
  for (const [name, scheme] of Object.entries(groups ?? {})) {
    const apply = Array.isArray(scheme?.apply) ? scheme.apply : [];
    for (const a of apply as { location?: unknown; targets?: unknown }[]) {
      if (typeof a?.location === "string" && !FUSED.has(a.location)) {
        const targets = Array.isArray(a.targets) ? a.targets.join(", ") : String(a.targets);
        out.push(`${name}: ${a.location} on ${targets}`);
      }
    }
  }
  return out;
}

/**
 * Refuses a model whose transform_config needs online transforms.
 *
 * @param config the model config
 * @throws {TransformError} listing the online applications
 * @example
 * ```ts ignore
 * assertNoOnlineTransforms(hf.config); // fine for fused-only SpinQuant R1/R2 checkpoints
 * ```
 */
export function assertNoOnlineTransforms(config: ModelConfig): void {
  const online = onlineTransforms(config);
  if (online.length === 0) return;
  throw new TransformError(
    `config.json transform_config needs online transforms llmc's forward does not apply yet ` +
      `(${online.join("; ")}); without them the weights compute a different function`,
  );
}
