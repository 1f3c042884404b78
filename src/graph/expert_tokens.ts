/**
 * How many calibration tokens each expert of a mixture-of-experts layer
 * received: the router's top-k choices (read back from the `moe_routing`
 * taps of the first calibration round) and, depending on
 * `moe_calibrate_all_experts`, how many tokens its statistics saw (all of
 * them, or the routed ones).
 *
 * @module
 */

import type { Engine, Tensor } from "../engine/engine.ts";
import type { MoeRoutingTap } from "../model/taps.ts";

/** Tokens one expert saw. */
export interface ExpertTokens {
  /** Tokens the router sent to the expert (one of its top-k). */
  readonly routed: number;
  /** Tokens behind the expert's statistics (every token when all experts are calibrated). */
  readonly calibrated: number;
}

/**
 * Counts routed tokens per expert from `moe_routing` taps.
 *
 * @example
 * ```ts ignore
 * import { ExpertTokenCounter } from "./expert_tokens.ts";
 * const counter = new ExpertTokenCounter(true);
 * // in a tap listener: if (e.kind === "moe_routing") counter.record(e);
 * await counter.settle();
 * counter.of("model.layers.0.mlp", 3); // { routed: 57, calibrated: 512 }
 * ```
 */
export class ExpertTokenCounter {
  readonly #pending: { module: string; engine: Engine; perExpert: Tensor }[] = [];
  readonly #routed = new Map<string, number[]>();
  readonly #tokens = new Map<string, number>();

  /**
   * @param calibrateAllExperts whether every expert's statistics see every token
   */
  constructor(readonly calibrateAllExperts: boolean) {}

  /**
   * Keeps a copy of a tap's routing weights (recorded on its engine with the
   * layer's work, transposed to one row per expert) for {@link settle}.
   *
   * @param tap the routing of one forward
   */
  record(tap: MoeRoutingTap): void {
    const perExpert = tap.engine.transpose(tap.weights);
    this.#pending.push({ module: tap.module, engine: tap.engine, perExpert });
  }

  /** Reads every recorded routing back and counts it. */
  async settle(): Promise<void> {
    const pending = this.#pending.splice(0);
    try {
      for (const { module, engine, perExpert } of pending) {
        const [experts, rows] = perExpert.shape;
        const [w] = await engine.read([perExpert]);
        const counts = this.#routed.get(module) ?? new Array(experts).fill(0);
        for (let e = 0; e < experts; e++) {
          for (let r = 0; r < rows; r++) if (w[e * rows + r] !== 0) counts[e]++;
        }
        this.#routed.set(module, counts);
        this.#tokens.set(module, (this.#tokens.get(module) ?? 0) + rows);
      }
    } finally {
      for (const { perExpert } of pending) perExpert.destroy();
    }
  }

  /**
   * The tokens expert `e` of the sparse block `module` saw, or null when no
   * routing of that block was recorded.
   *
   * @param module the sparse block, e.g. `model.layers.0.mlp`
   * @param e the expert
   * @returns the counts
   */
  of(module: string, e: number): ExpertTokens | null {
    const routed = this.#routed.get(module)?.[e];
    if (routed === undefined) return null;
    return { routed, calibrated: this.calibrateAllExperts ? this.#tokens.get(module)! : routed };
  }
}
