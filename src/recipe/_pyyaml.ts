/**
 * A small YAML emitter that writes what PyYAML's
 * `yaml.dump(data, sort_keys=False, default_flow_style=None, width=88,
 * allow_unicode=True)` writes, so llmc's saved `recipe.yaml` is byte-identical
 * to llm-compressor's. The npm `yaml` package cannot do this: PyYAML's
 * `default_flow_style=None` writes a collection in flow style exactly when all
 * its children are scalars, nests block sequences without indentation inside
 * mappings, quotes by its own YAML 1.1 rules (`'2:4'` is a base-60 integer to
 * PyYAML) and prints floats as Python's `repr`.
 *
 * Emulated from PyYAML's Emitter: block/flow choice, indentation (including
 * "indentless" sequences), scalar styles (`analyze_scalar`, the YAML 1.1
 * implicit resolvers), folding of long scalars at spaces, multi-line and
 * escaped strings, flow-collection wrapping past the width, Python float
 * repr. Checked against PyYAML 6 on thousands of random nested values.
 * Not emulated (a recipe never has them): complex `? ` keys (multi-line keys
 * or keys of 128+ characters), anchors and aliases, and the `...` document
 * end PyYAML adds after a bare top-level scalar.
 *
 * @module
 */

import { PyFloat } from "../quant/python_json.ts";

export { PyFloat };

/** A value PyYAML can dump: JS numbers are Python `int`s unless wrapped in `PyFloat`. */
export type PyValue =
  | null
  | boolean
  | number
  | string
  | PyFloat
  | PyValue[]
  | Map<string, PyValue>
  | { [key: string]: PyValue };

type Node =
  | { kind: "scalar"; value: null | boolean | number | string | PyFloat }
  | { kind: "seq"; items: Node[]; flow: boolean }
  | { kind: "map"; entries: [string, Node][]; flow: boolean };

function toNode(v: PyValue): Node {
  if (
    v === null || typeof v === "boolean" || typeof v === "number" || typeof v === "string" ||
    v instanceof PyFloat
  ) {
    return { kind: "scalar", value: v };
  }
  if (Array.isArray(v)) {
    const items = v.map(toNode);
    return { kind: "seq", items, flow: items.every((n) => n.kind === "scalar") };
  }
  const pairs: [string, PyValue][] = v instanceof Map ? [...v.entries()] : Object.entries(v);
  const entries = pairs.map(([k, x]): [string, Node] => [k, toNode(x)]);
  return { kind: "map", entries, flow: entries.every(([, n]) => n.kind === "scalar") };
}

/**
 * Python's `repr(float)` as PyYAML prints it: shortest round-trip digits,
 * exponent form outside [1e-4, 1e16), `.0` forced into exponent forms
 * without a point, lower case.
 */
export function pyFloatRepr(x: number): string {
  if (Number.isNaN(x)) return ".nan";
  if (x === Infinity) return ".inf";
  if (x === -Infinity) return "-.inf";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const [mantissa, expText] = x.toExponential().split("e");
  const exp = Number(expText);
  const sign = mantissa.startsWith("-") ? "-" : "";
  const digits = mantissa.replace("-", "").replace(".", "");
  let body: string;
  if (exp >= -4 && exp < 16) {
    if (exp >= 0) {
      const int = digits.slice(0, exp + 1).padEnd(exp + 1, "0");
      body = `${int}.${digits.slice(exp + 1) || "0"}`;
    } else {
      body = `0.${"0".repeat(-exp - 1)}${digits}`;
    }
  } else {
    const frac = digits.length > 1 ? `.${digits.slice(1)}` : ".0";
    const e = Math.abs(exp).toString().padStart(2, "0");
    body = `${digits[0]}${frac}e${exp < 0 ? "-" : "+"}${e}`;
  }
  return sign + body;
}

// PyYAML's YAML 1.1 implicit resolvers: a string that matches one of these
// would read back as another type, so it must be quoted.
const IMPLICIT: RegExp[] = [
  /^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$/,
  /^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$/,
  /^(?:[-+]?0b[0-1_]+|[-+]?0[0-7_]+|[-+]?(?:0|[1-9][0-9_]*)|[-+]?0x[0-9a-fA-F_]+|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$/,
  /^(?:<<)$/,
  /^(?:~|null|Null|NULL|)$/,
  /^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$/,
  /^(?:=)$/,
];

const WS = "\0 \t\r\n\x85\u2028\u2029";
const BREAKS = "\n\x85\u2028\u2029";

interface Analysis {
  multiline: boolean;
  flowPlain: boolean;
  blockPlain: boolean;
  singleQuoted: boolean;
}

/** PyYAML's `Emitter.analyze_scalar` with `allow_unicode=True`. */
function analyze(s: string): Analysis {
  if (s === "") return { multiline: false, flowPlain: false, blockPlain: true, singleQuoted: true };
  let blockInd = false, flowInd = false, lineBreaks = false, special = false;
  let leadingSpace = false, leadingBreak = false, trailingSpace = false, trailingBreak = false;
  let breakSpace = false, spaceBreak = false, prevSpace = false, prevBreak = false;
  if (s.startsWith("---") || s.startsWith("...")) blockInd = flowInd = true;
  const chars = [...s];
  let precededByWs = true;
  let followedByWs = chars.length === 1 || WS.includes(chars[1]);
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i];
    if (i === 0) {
      if ("#,[]{}&*!|>'\"%@`".includes(ch)) flowInd = blockInd = true;
      if ("?:".includes(ch)) {
        flowInd = true;
        if (followedByWs) blockInd = true;
      }
      if (ch === "-" && followedByWs) flowInd = blockInd = true;
    } else {
      if (",?[]{}".includes(ch)) flowInd = true;
      if (ch === ":") {
        flowInd = true;
        if (followedByWs) blockInd = true;
      }
      if (ch === "#" && precededByWs) flowInd = blockInd = true;
    }
    if (BREAKS.includes(ch)) lineBreaks = true;
    const cp = ch.codePointAt(0)!;
    if (!(ch === "\n" || (cp >= 0x20 && cp <= 0x7e))) {
      const printable = (cp === 0x85 || (cp >= 0xa0 && cp <= 0xd7ff) ||
        (cp >= 0xe000 && cp <= 0xfffd) || (cp >= 0x10000 && cp < 0x10ffff)) && cp !== 0xfeff;
      if (!printable) special = true;
    }
    if (ch === " ") {
      if (i === 0) leadingSpace = true;
      if (i === chars.length - 1) trailingSpace = true;
      if (prevBreak) breakSpace = true;
      prevSpace = true;
      prevBreak = false;
    } else if (BREAKS.includes(ch)) {
      if (i === 0) leadingBreak = true;
      if (i === chars.length - 1) trailingBreak = true;
      if (prevSpace) spaceBreak = true;
      prevSpace = false;
      prevBreak = true;
    } else {
      prevSpace = prevBreak = false;
    }
    precededByWs = WS.includes(ch);
    followedByWs = i + 2 >= chars.length || WS.includes(chars[i + 2]);
  }
  let flowPlain = true, blockPlain = true, singleQuoted = true;
  if (leadingSpace || leadingBreak || trailingSpace || trailingBreak) {
    flowPlain = blockPlain = false;
  }
  if (breakSpace) flowPlain = blockPlain = singleQuoted = false;
  if (spaceBreak || special) flowPlain = blockPlain = singleQuoted = false;
  if (lineBreaks) flowPlain = blockPlain = false;
  if (flowInd) flowPlain = false;
  if (blockInd) blockPlain = false;
  return { multiline: lineBreaks, flowPlain, blockPlain, singleQuoted };
}

const ESCAPES: Readonly<Record<string, string>> = {
  "\0": "0",
  "\x07": "a",
  "\b": "b",
  "\t": "t",
  "\n": "n",
  "\v": "v",
  "\f": "f",
  "\r": "r",
  "\x1b": "e",
  '"': '"',
  "\\": "\\",
  "\x85": "N",
  "\xa0": "_",
  "\u2028": "L",
  "\u2029": "P",
};

/** PyYAML's stream state: the column and its `whitespace` / `indention` flags. */
class Writer {
  text = "";
  column = 0;
  whitespace = true;
  indention = true;

  write(s: string): void {
    this.text += s;
    this.column += [...s].length;
  }

  lineBreak(br = "\n"): void {
    this.text += br;
    this.column = 0;
    this.whitespace = true;
    this.indention = true;
  }

  /** `Emitter.write_indent`. */
  writeIndent(indent: number): void {
    if (!this.indention || this.column > indent || (this.column === indent && !this.whitespace)) {
      this.lineBreak();
    }
    if (this.column < indent) {
      this.whitespace = true;
      this.write(" ".repeat(indent - this.column));
    }
  }

  /** `Emitter.write_indicator`. */
  indicator(text: string, needWhitespace: boolean, whitespace = false, indention = false): void {
    this.write(this.whitespace || !needWhitespace ? text : " " + text);
    this.whitespace = whitespace;
    this.indention = this.indention && indention;
  }
}

/** Where a scalar is written: its continuation indent, whether it may fold, the width. */
interface ScalarPlace {
  indent: number;
  split: boolean;
  width: number;
}

function writePlain(w: Writer, text: string, at: ScalarPlace): void {
  if (text === "") return;
  if (!w.whitespace) w.write(" ");
  w.whitespace = false;
  w.indention = false;
  const t = [...text];
  let spaces = false;
  let start = 0;
  for (let end = 0; end <= t.length; end++) {
    const ch = end < t.length ? t[end] : null;
    if (spaces) {
      if (ch !== " ") {
        if (start + 1 === end && w.column > at.width && at.split) {
          w.writeIndent(at.indent);
          w.whitespace = false;
          w.indention = false;
        } else {
          w.write(t.slice(start, end).join(""));
        }
        start = end;
      }
    } else if (ch === null || ch === " ") {
      w.write(t.slice(start, end).join(""));
      start = end;
    }
    if (ch !== null) spaces = ch === " ";
  }
}

function writeSingleQuoted(w: Writer, text: string, at: ScalarPlace): void {
  w.indicator("'", true);
  const t = [...text];
  let spaces = false;
  let breaks = false;
  let start = 0;
  for (let end = 0; end <= t.length; end++) {
    const ch = end < t.length ? t[end] : null;
    if (spaces) {
      if (ch !== " ") {
        if (
          start + 1 === end && w.column > at.width && at.split && start !== 0 && end !== t.length
        ) {
          w.writeIndent(at.indent);
        } else {
          w.write(t.slice(start, end).join(""));
        }
        start = end;
      }
    } else if (breaks) {
      if (ch === null || !BREAKS.includes(ch)) {
        if (t[start] === "\n") w.lineBreak();
        for (const br of t.slice(start, end)) w.lineBreak(br);
        w.writeIndent(at.indent);
        start = end;
      }
    } else if (ch === null || " \n\x85\u2028\u2029'".includes(ch)) {
      if (start < end) {
        w.write(t.slice(start, end).join(""));
        start = end;
      }
    }
    if (ch === "'") {
      w.write("''");
      start = end + 1;
    }
    if (ch !== null) {
      spaces = ch === " ";
      breaks = BREAKS.includes(ch);
    }
  }
  w.indicator("'", false);
}

function printableInDoubleQuotes(ch: string): boolean {
  const cp = ch.codePointAt(0)!;
  return (cp >= 0x20 && cp <= 0x7e) || (cp >= 0xa0 && cp <= 0xd7ff) ||
    (cp >= 0xe000 && cp <= 0xfffd);
}

function escape(ch: string): string {
  if (Object.hasOwn(ESCAPES, ch)) return "\\" + ESCAPES[ch];
  const cp = ch.codePointAt(0)!;
  const hex = cp.toString(16).toUpperCase();
  if (cp <= 0xff) return "\\x" + hex.padStart(2, "0");
  if (cp <= 0xffff) return "\\u" + hex.padStart(4, "0");
  return "\\U" + hex.padStart(8, "0");
}

function writeDoubleQuoted(w: Writer, text: string, at: ScalarPlace): void {
  w.indicator('"', true);
  const t = [...text];
  let start = 0;
  for (let end = 0; end <= t.length; end++) {
    const ch = end < t.length ? t[end] : null;
    if (ch === null || '"\\\x85\u2028\u2029\ufeff'.includes(ch) || !printableInDoubleQuotes(ch)) {
      if (start < end) {
        w.write(t.slice(start, end).join(""));
        start = end;
      }
      if (ch !== null) {
        w.write(escape(ch));
        start = end + 1;
      }
    }
    if (
      end > 0 && end < t.length - 1 && (ch === " " || start >= end) &&
      w.column + (end - start) > at.width && at.split
    ) {
      w.write(t.slice(start, end).join("") + "\\");
      if (start < end) start = end;
      w.writeIndent(at.indent);
      w.whitespace = false;
      w.indention = false;
      if (t[start] === " ") w.write("\\");
    }
  }
  w.indicator('"', false);
}

/** PyYAML's `choose_scalar_style` and the matching writer. */
function writeScalar(
  w: Writer,
  value: null | boolean | number | string | PyFloat,
  flow: boolean,
  simpleKey: boolean,
  indent: number,
  width: number,
): void {
  const at: ScalarPlace = { indent, split: !simpleKey, width };
  if (value === null) return writePlain(w, "null", at);
  if (typeof value === "boolean") return writePlain(w, value ? "true" : "false", at);
  if (value instanceof PyFloat) return writePlain(w, pyFloatRepr(value.value), at);
  if (typeof value === "number") {
    // A JS number that is not an integer can only be a Python float.
    return writePlain(w, Number.isInteger(value) ? value.toString() : pyFloatRepr(value), at);
  }
  const a = analyze(value);
  const implicitStr = !IMPLICIT.some((re) => re.test(value));
  if (
    implicitStr && !(simpleKey && (value === "" || a.multiline)) &&
    (flow ? a.flowPlain : a.blockPlain)
  ) {
    return writePlain(w, value, at);
  }
  if (a.singleQuoted && !(simpleKey && a.multiline)) return writeSingleQuoted(w, value, at);
  writeDoubleQuoted(w, value, at);
}

type Collection = Exclude<Node, { kind: "scalar" }>;
type Scalar = Extract<Node, { kind: "scalar" }>;

/** A flow collection (all children scalars) whose own indent is `indent`. */
function emitFlow(w: Writer, node: Collection, indent: number, width: number): void {
  w.indicator(node.kind === "seq" ? "[" : "{", true, true);
  const count = node.kind === "seq" ? node.items.length : node.entries.length;
  for (let i = 0; i < count; i++) {
    if (i > 0) w.indicator(",", false);
    if (w.column > width) w.writeIndent(indent);
    if (node.kind === "seq") {
      writeScalar(w, (node.items[i] as Scalar).value, true, false, indent + 2, width);
    } else {
      const [k, v] = node.entries[i];
      writeScalar(w, k, true, true, indent + 2, width);
      w.indicator(":", false);
      writeScalar(w, (v as Scalar).value, true, false, indent + 2, width);
    }
  }
  w.indicator(node.kind === "seq" ? "]" : "}", false);
}

/**
 * Emits one node. `indent` is PyYAML's current indent when the node starts
 * (the enclosing block collection's indent; null at the root), and
 * `mappingValue` whether the node is a block mapping's value (where PyYAML
 * writes sequences without indentation).
 */
function emit(w: Writer, node: Node, indent: number | null, mappingValue: boolean, width: number) {
  if (node.kind === "scalar") {
    writeScalar(w, node.value, false, false, (indent ?? 0) + 2, width);
    return;
  }
  if (node.flow) {
    emitFlow(w, node, indent === null ? 2 : indent + 2, width);
    return;
  }
  if (node.kind === "map") {
    const own = indent === null ? 0 : indent + 2;
    for (const [k, v] of node.entries) {
      w.writeIndent(own);
      writeScalar(w, k, false, true, own + 2, width);
      w.indicator(":", false);
      emit(w, v, own, true, width);
    }
    return;
  }
  const indentless = mappingValue && !w.indention;
  const own = indent === null ? 0 : indentless ? indent : indent + 2;
  for (const item of node.items) {
    w.writeIndent(own);
    w.indicator("-", true, false, true);
    emit(w, item, own, false, width);
  }
}

/**
 * Dumps a value the way PyYAML's `yaml.dump(sort_keys=False,
 * default_flow_style=None, allow_unicode=True, width=88)` does.
 *
 * @param value the data; JS numbers are ints, `PyFloat` marks Python floats
 * @param width PyYAML's `width` (llm-compressor uses 88)
 * @returns the YAML text, ending in a newline
 * @example
 * ```ts
 * import { dumpPyYaml, PyFloat } from "./_pyyaml.ts";
 * const text = dumpPyYaml({ a: { b: ["x", "re:.*y$"], c: new PyFloat(1) } });
 * console.assert(text === "a:\n  b: [x, 're:.*y$']\n  c: 1.0\n");
 * ```
 */
export function dumpPyYaml(value: PyValue, width = 88): string {
  const w = new Writer();
  emit(w, toNode(value), null, false, width);
  return w.text + "\n";
}
