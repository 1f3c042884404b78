/**
 * The checkpoint's `sparsity_config` (§1.2.7), inferred as llm-compressor
 * does at save time after a sparsity modifier ran: each written Linear's
 * measured weight sparsity decides whether it is a sparse target (≥ 0.49
 * zeros and, for 2:4, every run of 4 has ≥ 2 zeros); targets and ignore
 * are grouped by class; the format is `sparse-24-bitmask` for 2:4 when the
 * model is unquantized or every quantized module is W8A8 with 8-bit
 * weights and inputs, else `dense` (marlin-24 carries its own sparsity).
 *
 * @module
 */

import { LlmcError } from "../errors.ts";
import type { JsonValue } from "../quant/python_json.ts";
import type { ModuleFormat } from "../quant/compression_format.ts";
import type { SparsityStructure } from "../quant/format.ts";
import type { QuantizationScheme } from "../quant/scheme.ts";

/** Upstream's weight-sparsity threshold of a sparse target. */
export const SPARSE_TARGET_THRESHOLD = 0.49;

/**
 * Whether a weight is 2:4 sparse: every run of 4 consecutive values of a row has ≥ 2 zeros.
 *
 * @param w the weight `[rows, cols]`, row-major
 * @param cols columns (a multiple of 4)
 * @returns true when it is
 * @example
 * ```ts
 * import { is24Sparse } from "./sparsity_config.ts";
 * is24Sparse(new Float32Array([0, 1, 0, 2]), 4); // true
 * is24Sparse(new Float32Array([3, 1, 0, 2]), 4); // false
 * ```
 */
export function is24Sparse(w: Float32Array, cols: number): boolean {
  return zeroCounts(w, cols).twoFour;
}

/**
 * A weight's zeros (−0 included) and whether it is 2:4 sparse, in one pass.
 * The counts go without a branch: a pruned weight's zeros are where no
 * branch predictor could guess them.
 */
function zeroCounts(w: Float32Array, cols: number): { zeros: number; twoFour: boolean } {
  let zeros = 0;
  if (cols % 4 !== 0) {
    for (let i = 0; i < w.length; i++) zeros += +(w[i] === 0);
    return { zeros, twoFour: false };
  }
  let sparseGroups = 0;
  for (let i = 0; i < w.length; i += 4) {
    const z = +(w[i] === 0) + +(w[i + 1] === 0) + +(w[i + 2] === 0) + +(w[i + 3] === 0);
    zeros += z;
    sparseGroups += +(z >= 2);
  }
  return { zeros, twoFour: sparseGroups === w.length / 4 };
}

/**
 * Whether a quantized scheme lets a 2:4 model use `sparse-24-bitmask`
 * (vLLM's CUTLASS 2:4 path: W8A8 with 8-bit int/float weights and inputs).
 *
 * @param s a module's scheme (null: unquantized)
 * @returns true when it is compatible
 * @example
 * ```ts
 * import { sparse24Compatible } from "./sparsity_config.ts";
 * import { presetScheme } from "../quant/presets.ts";
 * sparse24Compatible(presetScheme("FP8_DYNAMIC", ["Linear"])); // true
 * sparse24Compatible(presetScheme("W4A16", ["Linear"])); // false
 * ```
 */
export function sparse24Compatible(s: QuantizationScheme | null): boolean {
  if (s === null || (s.weights === null && s.inputActivations === null)) return true;
  const w = s.weights;
  const a = s.inputActivations;
  return w !== null && a !== null && w.numBits === 8 && a.numBits === 8 &&
    (w.type === "int" || w.type === "float") && w.type === a.type;
}

/**
 * The sparsity format a run writes: `sparse-24-bitmask` for 2:4 with only
 * compatible quantized modules, `dense` otherwise.
 *
 * @param structure the model's sparsity structure
 * @param schemes the final scheme of every written Linear
 * @param formats their quantization formats
 * @returns the format
 * @example
 * ```ts
 * import { sparsityFormatOf } from "./sparsity_config.ts";
 * sparsityFormatOf("2:4", [null], [null]); // "sparse-24-bitmask"
 * sparsityFormatOf("unstructured", [null], [null]); // "dense"
 * ```
 */
export function sparsityFormatOf(
  structure: SparsityStructure,
  schemes: readonly (QuantizationScheme | null)[],
  formats: readonly (ModuleFormat | null)[],
): "dense" | "sparse-24-bitmask" {
  if (structure !== "2:4" || formats.includes("marlin-24")) return "dense";
  return schemes.every(sparse24Compatible) ? "sparse-24-bitmask" : "dense";
}

/** What was measured of one written Linear. */
/** Persisted sparsity statistics of one Linear. */
export interface SparsityMeasurement {
  /** Whether it is a sparse target. */
  readonly target: boolean;
  /** Zero weights. */
  readonly zeros: number;
}

/** Persisted sparsity statistics could not be used (resume). */
export class SparsityStatsError extends LlmcError {}

interface Measured {
  readonly target: boolean;
  readonly zeros: number;
}

/**
 * Collects written Linears' sparsity and builds the `sparsity_config`.
 *
 * @example
 * ```ts
 * import { SparsityTracker } from "./sparsity_config.ts";
 * const t = new SparsityTracker("2:4", "dense", 8);
 * t.record("a", new Float32Array([0, 1, 0, 2]), 4);
 * t.config(["a"]).targets; // ["Linear"]
 * ```
 */
export class SparsityTracker {
  readonly structure: SparsityStructure;
  readonly format: "dense" | "sparse-24-bitmask";
  readonly #totalParams: number;
  readonly #measured = new Map<string, Measured>();

  /**
   * @param structure the model's sparsity structure
   * @param format the sparsity format written
   * @param totalParams every parameter of the model (for global_sparsity)
   */
  constructor(
    structure: SparsityStructure,
    format: "dense" | "sparse-24-bitmask",
    totalParams: number,
  ) {
    this.structure = structure;
    this.format = format;
    this.#totalParams = totalParams;
  }

  /**
   * Measures a written Linear's weight.
   *
   * @param module the module name
   * @param weight its final dense weight
   * @param cols in_features
   * @returns whether it is a sparse target (and gets sparsity-compressed)
   */
  record(module: string, weight: Float32Array, cols: number): boolean {
    const { zeros, twoFour } = zeroCounts(weight, cols);
    const target = zeros / weight.length >= SPARSE_TARGET_THRESHOLD &&
      (this.structure !== "2:4" || twoFour);
    this.#measured.set(module, { target, zeros });
    return target;
  }

  /**
   * What was measured for some modules, to persist with a written layer so
   * that a resumed run, which does not rewrite that layer, still counts it.
   *
   * @param modules module names
   * @returns module → {target, zeros} for those measured
   * @example
   * ```ts
   * import { SparsityTracker } from "./sparsity_config.ts";
   * const t = new SparsityTracker("2:4", "dense", 4);
   * t.record("a", new Float32Array([0, 1, 0, 2]), 4);
   * t.measurements(["a"]); // { a: { target: true, zeros: 2 } }
   * ```
   */
  measurements(modules: readonly string[]): Record<string, SparsityMeasurement> {
    const out: Record<string, SparsityMeasurement> = {};
    for (const m of modules) {
      const v = this.#measured.get(m);
      if (v !== undefined) out[m] = { target: v.target, zeros: v.zeros };
    }
    return out;
  }

  /**
   * Adds measurements persisted by an earlier run ({@link measurements}).
   *
   * @param entries module → {target, zeros}
   * @throws {SparsityStatsError} when an entry is malformed
   * @example
   * ```ts
   * import { SparsityTracker } from "./sparsity_config.ts";
   * const t = new SparsityTracker("2:4", "dense", 4);
   * t.restore({ a: { target: true, zeros: 2 } });
   * t.config(["a"]).global_sparsity; // 0.5
   * ```
   */
  restore(entries: Readonly<Record<string, unknown>>): void {
    for (const [module, v] of Object.entries(entries)) {
      const e = v as Partial<SparsityMeasurement> | null;
      if (
        e === null || typeof e !== "object" || typeof e.target !== "boolean" ||
        !Number.isInteger(e.zeros) || (e.zeros as number) < 0
      ) {
        throw new SparsityStatsError(
          `${module}: malformed sparsity measurement ${JSON.stringify(v)}`,
        );
      }
      this.#measured.set(module, { target: e.target, zeros: e.zeros as number });
    }
  }

  /**
   * The `sparsity_config` object.
   *
   * @param linears every Linear of the model (names), for the ignore list
   * @returns the JSON object
   */
  config(linears: readonly string[]): { [key: string]: JsonValue } {
    const targets = linears.filter((n) => this.#measured.get(n)?.target === true);
    const others = linears.filter((n) => !targets.includes(n));
    let zeros = 0;
    for (const m of this.#measured.values()) zeros += m.zeros;
    const grouped = targets.length >= others.length;
    return {
      format: this.format,
      global_sparsity: this.#totalParams > 0 ? zeros / this.#totalParams : 0,
      ignore: grouped ? others : [],
      registry_requires_subclass: false,
      sparsity_structure: this.structure,
      targets: grouped ? (targets.length > 0 ? ["Linear"] : []) : targets,
    };
  }
}
