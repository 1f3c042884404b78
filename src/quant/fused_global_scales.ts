/**
 * Fused NVFP4 global scales (§1.6): vLLM fuses q/k/v into `qkv_proj` and
 * gate/up into `gate_up_proj` with one global scale each, so llm-compressor
 * replaces the weight global scale of each member by the minimum of the set
 * (`update_fused_layer_weight_global_scales`).
 *
 * @module
 */

/** A module of the model tree (name and class name). */
export interface NamedModule {
  /** Full dotted name. */
  readonly name: string;
  /** Class name, e.g. `LlamaAttention`, `LlamaMLP`. */
  readonly className: string;
}

/**
 * The sets of Linears whose weight global scales are fused: under every
 * module whose class name contains "attention" (and that has no fused
 * `qkv_proj`), its `q_proj`, `k_proj`, `v_proj`; under every module whose
 * class name contains "mlp", its `gate_proj`, `up_proj` — each set only when
 * all members exist and are quantized with strategy tensor_group.
 *
 * @param modules every module of the model (names of children are looked up among them)
 * @param isTensorGroup whether a Linear's weights use tensor_group quantization
 * @returns the fused sets, in module order
 * @example
 * ```ts
 * import { fusedGlobalScaleGroups } from "./fused_global_scales.ts";
 * const mods = ["q_proj", "k_proj", "v_proj", "o_proj"].map((n) => ({ name: `a.${n}`, className: "Linear" }));
 * fusedGlobalScaleGroups([{ name: "a", className: "LlamaAttention" }, ...mods], () => true);
 * // [["a.q_proj", "a.k_proj", "a.v_proj"]]
 * ```
 */
export function fusedGlobalScaleGroups(
  modules: readonly NamedModule[],
  isTensorGroup: (name: string) => boolean,
): string[][] {
  const names = new Set(modules.map((m) => m.name));
  const child = (parent: string, c: string) => (parent === "" ? c : `${parent}.${c}`);
  const valid = (set: string[]) => set.every((n) => names.has(n) && isTensorGroup(n));
  const out: string[][] = [];
  for (const m of modules) {
    const cls = m.className.toLowerCase();
    if (cls.includes("attention")) {
      const hasKv = ["k_proj", "v_proj", "qkv_proj"].some((c) => names.has(child(m.name, c)));
      if (hasKv && !names.has(child(m.name, "qkv_proj"))) {
        const set = ["q_proj", "k_proj", "v_proj"].map((c) => child(m.name, c));
        if (valid(set)) out.push(set);
      }
    }
    if (cls.includes("mlp")) {
      const set = ["gate_proj", "up_proj"].map((c) => child(m.name, c));
      if (valid(set)) out.push(set);
    }
  }
  return out;
}

/**
 * Replaces each member's global scale by the minimum over its fused set.
 *
 * @param scales global scale per module name
 * @param groups the fused sets ({@link fusedGlobalScaleGroups})
 * @returns a new map with fused values (modules outside any set unchanged)
 * @example
 * ```ts
 * import { fuseGlobalScales } from "./fused_global_scales.ts";
 * const m = fuseGlobalScales(new Map([["q", 3], ["k", 2], ["v", 5]]), [["q", "k", "v"]]);
 * m.get("q"); // 2
 * ```
 */
export function fuseGlobalScales(
  scales: ReadonlyMap<string, number>,
  groups: readonly (readonly string[])[],
): Map<string, number> {
  const out = new Map(scales);
  for (const set of groups) {
    const min = Math.min(...set.map((n) => scales.get(n) ?? Infinity));
    for (const n of set) out.set(n, min);
  }
  return out;
}
