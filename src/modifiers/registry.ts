/**
 * The modifiers the calibration graph can run, found by class name. Each
 * modifier folder exports one {@link ModifierRegistration}; the list in
 * `src/modifiers/builtin.ts` (one line per modifier) is the registry.
 *
 * @module
 */

import type { HfModel } from "../io/hf_model.ts";
import type { ModelConfig } from "../io/model_config.ts";
import type { ModifierSpec } from "../recipe/modifiers.ts";
import type { Recipe } from "../recipe/recipe.ts";
import type { LayerModifier } from "../graph/modifier.ts";
import type { QuantizationPlan } from "./quantization/quantization_plan.ts";
import type { ModuleFormat } from "../quant/compression_format.ts";

/** What every modifier's plan has. */
export interface PlanBase {
  /** The recipe entry. */
  readonly modifier: ModifierSpec;
  /** Whether it needs calibration data. */
  readonly needsData: boolean;
  /** Targets and ignore entries that match no module (warned about). */
  readonly unmatched: readonly string[];
}

/** How the graph plans and runs one modifier class. */
export interface ModifierRegistration<P extends PlanBase = PlanBase> {
  /** The class names it runs, e.g. `["SmoothQuantModifier", "LogarithmicEqualizationModifier"]`. */
  readonly types: readonly string[];
  /**
   * Validates and plans the modifier over a model, reading no weights.
   *
   * @param source the model
   * @param spec the recipe entry (one of `types`)
   * @param formatOverride a format forced on every module the plan quantizes
   *   (`"dense"` for an in-memory or dense save), or null
   * @returns the plan
   */
  plan(source: HfModel, spec: ModifierSpec, formatOverride: ModuleFormat | null): P;
  /**
   * The layer modifiers that run the plan, in order (AWQ: smoothing, then quantization).
   *
   * @param plan the plan
   * @returns the layer modifiers
   */
  layerModifiers(plan: P): LayerModifier[];
  /**
   * The quantization the plan leaves in the checkpoint (its schemes, its
   * quantization_config contribution), or null for modifiers that quantize nothing.
   *
   * @param plan the plan
   * @returns the quantization plan, or null
   */
  quantization(plan: P): QuantizationPlan | null;
  /**
   * The plan with its quantization plan replaced (runs with 2:4 sparsity change formats).
   *
   * @param plan the plan
   * @param quantization the replacement
   * @returns the new plan
   */
  withQuantization?(plan: P, quantization: QuantizationPlan): P;
  /**
   * The recipe entry as upstream's `initialize` leaves it, which is what its
   * `recipe.yaml` records (e.g. AWQ's and SmoothQuant's inferred `mappings`).
   * Absent: the entry is written as given.
   *
   * @param spec the recipe entry (one of `types`)
   * @param config the model's config
   * @returns the entry with the fields upstream fills in
   */
  initialized?(spec: ModifierSpec, config: ModelConfig): ModifierSpec;
}

/**
 * A registry of modifier registrations by class name.
 *
 * @example
 * ```ts ignore
 * const registry = new ModifierRegistry([quantizationModifier, smoothQuantModifier]);
 * const plan = registry.plan(hf, recipe.modifiers[0]);
 * ```
 */
export class ModifierRegistry {
  readonly #byType = new Map<string, ModifierRegistration>();

  /** @param registrations the modifiers (a class name may be registered once) */
  constructor(registrations: readonly ModifierRegistration[]) {
    for (const r of registrations) {
      for (const t of r.types) {
        if (this.#byType.has(t)) throw new Error(`modifier ${t} is registered twice`);
        this.#byType.set(t, r);
      }
    }
  }

  /** The class names the registry runs. */
  get types(): string[] {
    return [...this.#byType.keys()];
  }

  /**
   * The registration of a class name, or undefined.
   *
   * @param type a modifier class name
   * @returns its registration
   * @example
   * ```ts ignore
   * MODIFIERS.get("AWQModifier")?.types; // ["AWQModifier"]
   * ```
   */
  get(type: string): ModifierRegistration | undefined {
    return this.#byType.get(type);
  }

  /**
   * The registration a plan came from.
   *
   * @param plan a plan this registry made
   * @returns its registration
   * @throws {Error} for a plan of an unregistered class (a programming error)
   * @example
   * ```ts ignore
   * MODIFIERS.of(plan).layerModifiers(plan);
   * ```
   */
  of(plan: PlanBase): ModifierRegistration {
    const r = this.#byType.get(plan.modifier.type);
    if (r === undefined) throw new Error(`no modifier registered for ${plan.modifier.type}`);
    return r;
  }

  /**
   * The recipe as upstream's modifiers record it after `initialize`: each
   * entry with the fields its registration infers (see
   * {@link ModifierRegistration.initialized}); others unchanged.
   *
   * @param recipe the recipe as read
   * @param config the model's config
   * @returns the recipe to write as `recipe.yaml`
   * @example
   * ```ts ignore
   * recipeToYaml(MODIFIERS.initialized(recipe, hf.config)); // AWQ with its inferred mappings
   * ```
   */
  initialized(recipe: Recipe, config: ModelConfig): Recipe {
    return {
      ...recipe,
      modifiers: recipe.modifiers.map((m) => this.get(m.type)?.initialized?.(m, config) ?? m),
    };
  }
}
