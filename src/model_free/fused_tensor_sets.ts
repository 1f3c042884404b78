/**
 * Fused global-scale sets found by tensor name alone (no model tree), as
 * upstream's model-free path does: q/k/v under an `attn`/`attention`
 * module, MLA's `wq_a`/`wkv_a_with_mqa`, gate/up under an `mlp` module, and
 * `w1`/`w3` (Mixtral-style experts).
 *
 * @module
 */

interface FusedMapping {
  /** The part of the name before a member must match this (whole string). */
  readonly prefix: RegExp;
  /** Member module names relative to the prefix. */
  readonly members: readonly string[];
}

const MAPPINGS: readonly FusedMapping[] = [
  { prefix: /^.*(?:attn|attention)\.$/, members: ["q_proj", "k_proj", "v_proj"] },
  { prefix: /^.*(?:attn|attention)\.$/, members: ["wq_a", "wkv_a_with_mqa"] },
  { prefix: /^.*mlp\.$/, members: ["gate_proj", "up_proj"] },
  { prefix: /^.*$/, members: ["w1", "w3"] },
];

/** Fused sets among some module names. */
export interface FusedTensorSets {
  /** Complete sets (every member present), as module names in mapping order. */
  readonly complete: string[][];
  /** Sets with members missing: what is present, and what is missing. */
  readonly incomplete: { readonly present: string[]; readonly missing: string[] }[];
}

/**
 * Groups module names into fused sets by the upstream name patterns.
 *
 * @param moduleNames module names (a weight `X.weight` has module name `X`)
 * @returns complete and incomplete sets
 * @example
 * ```ts
 * import { fusedTensorSets } from "./fused_tensor_sets.ts";
 * const s = fusedTensorSets(["l.self_attn.q_proj", "l.self_attn.k_proj", "l.self_attn.v_proj", "l.mlp.up_proj"]);
 * s.complete; // [["l.self_attn.q_proj", "l.self_attn.k_proj", "l.self_attn.v_proj"]]
 * s.incomplete[0].missing; // ["l.mlp.gate_proj"]
 * ```
 */
export function fusedTensorSets(moduleNames: Iterable<string>): FusedTensorSets {
  const names = new Set(moduleNames);
  const seen = new Set<string>();
  const complete: string[][] = [];
  const incomplete: { present: string[]; missing: string[] }[] = [];
  MAPPINGS.forEach((mapping, index) => {
    for (const name of names) {
      for (const member of mapping.members) {
        if (!name.endsWith(member)) continue;
        const prefix = name.slice(0, name.length - member.length);
        const key = `${index}|${prefix}`;
        if (seen.has(key) || !mapping.prefix.test(prefix)) continue;
        seen.add(key);
        const all = mapping.members.map((m) => prefix + m);
        const missing = all.filter((m) => !names.has(m));
        if (missing.length === 0) complete.push(all);
        else incomplete.push({ present: all.filter((m) => names.has(m)), missing });
      }
    }
  });
  return { complete, incomplete };
}
