/**
 * The kernel loader's include directive: splicing WGSL function libraries
 * into the kernels that use them, and mapping the compiler's line numbers
 * back to the file and line they came from.
 *
 * WGSL has no includes, so kernels/ files that share functions (e.g. the
 * correctly rounded division of the fake-quantize kernels) say so with a
 * whole line
 *
 * ```wgsl
 * //! include "quantize_common.wgsl"
 * ```
 *
 * which is replaced by that file's text (a basename in kernels/, itself free
 * to include others). Each file is spliced in at most once per module, at
 * its first include; an include of a file that is being spliced (a cycle)
 * is an error, as is any other line starting with `//!`. To WGSL tools the
 * directive is a comment.
 *
 * @module
 */

import { KernelCompileError } from "./errors.ts";

/** A file and a 1-based line in it. */
export interface SourceLine {
  /** The file name, e.g. "quantize_common.wgsl". */
  file: string;
  /** The 1-based line number in that file. */
  line: number;
}

/** WGSL with its includes spliced in, and where each of its lines came from. */
export interface SplicedWgsl {
  /** The name of the file (or generated source) that was spliced. */
  name: string;
  /** The text the compiler sees. */
  code: string;
  /** `origins[n - 1]` is where line n of `code` came from. */
  origins: readonly SourceLine[];
}

/** One include directive: the file it names and the line it is on. */
export interface IncludeDirective {
  /** The included file, as written between the quotes. */
  file: string;
  /** The directive's 1-based line. */
  line: number;
}

const DIRECTIVE = /^\s*\/\/!/;
const INCLUDE = /^\s*\/\/!\s*include\s+"([^"]+)"\s*$/;

/**
 * The include directives of one source, in order.
 *
 * @param name the source's name, for error messages
 * @param code its text
 * @returns its directives
 * @throws {KernelCompileError} for a `//!` line that is not `//! include "file.wgsl"`
 *
 * @example
 * ```ts
 * import { includeDirectives } from "./_wgsl_include.ts";
 * const found = includeDirectives("k.wgsl", '// k\n//! include "lib.wgsl"\n');
 * console.assert(found[0].file === "lib.wgsl" && found[0].line === 2);
 * ```
 */
export function includeDirectives(name: string, code: string): IncludeDirective[] {
  const found: IncludeDirective[] = [];
  lines(code).forEach((text, i) => {
    const file = directive(name, i + 1, text);
    if (file !== null) found.push({ file, line: i + 1 });
  });
  return found;
}

/**
 * Splices a source's includes, recursively, each file once.
 *
 * @param name the source's name (the first element of every include chain)
 * @param code its text
 * @param read returns the text of an included file; whatever it throws is
 *   reported with the line of the directive that asked for the file
 * @returns the spliced text and the origin of each of its lines
 * @throws {KernelCompileError} on a cycle (naming the chain of files), a
 *   file that cannot be read, or a malformed `//!` line
 *
 * @example
 * ```ts
 * import { spliceIncludes } from "./_wgsl_include.ts";
 * const files: Record<string, string> = { "lib.wgsl": "fn one() -> f32 { return 1.0; }\n" };
 * const s = spliceIncludes("k.wgsl", '//! include "lib.wgsl"\n// main\n', (f) => files[f]);
 * console.assert(s.code === "fn one() -> f32 { return 1.0; }\n// main\n");
 * console.assert(s.origins[1].file === "k.wgsl" && s.origins[1].line === 2);
 * ```
 */
export function spliceIncludes(
  name: string,
  code: string,
  read: (file: string) => string,
): SplicedWgsl {
  const out: string[] = [];
  const origins: SourceLine[] = [];
  const spliced = new Set<string>();
  const chain: string[] = [];
  const visit = (file: string, text: string): void => {
    chain.push(file);
    lines(text).forEach((lineText, i) => {
      const target = directive(file, i + 1, lineText);
      if (target === null) {
        out.push(lineText);
        origins.push({ file, line: i + 1 });
        return;
      }
      if (chain.includes(target)) {
        const cycle = [...chain.slice(chain.indexOf(target)), target].join(" → ");
        throw new KernelCompileError(`${file}:${i + 1}: include cycle: ${cycle}`);
      }
      if (spliced.has(target)) return;
      spliced.add(target);
      let included: string;
      try {
        included = read(target);
      } catch (cause) {
        throw includeError(file, i + 1, target, cause);
      }
      visit(target, included);
    });
    chain.pop();
  };
  visit(name, code);
  return { name, code: out.join("\n") + "\n", origins };
}

/**
 * The error for an included file that could not be read.
 *
 * @param from the including file
 * @param line the directive's line in it
 * @param target the included file
 * @param cause what reading it threw
 * @returns a KernelCompileError naming all three
 *
 * @example
 * ```ts
 * import { includeError } from "./_wgsl_include.ts";
 * const e = includeError("k.wgsl", 3, "gone.wgsl", new Error("not found"));
 * console.assert(e.message === 'k.wgsl:3: cannot include "gone.wgsl": not found');
 * ```
 */
export function includeError(
  from: string,
  line: number,
  target: string,
  cause: unknown,
): KernelCompileError {
  const why = cause instanceof Error ? cause.message : String(cause);
  return new KernelCompileError(`${from}:${line}: cannot include "${target}": ${why}`, { cause });
}

/**
 * Where line `lineNum` of spliced code came from.
 *
 * @param source the spliced source
 * @param lineNum a 1-based line of `source.code` (0 or out of range: none)
 * @returns its file and line; `source.name` and `lineNum` when it has none
 *
 * @example
 * ```ts
 * import { originOf, spliceIncludes } from "./_wgsl_include.ts";
 * const s = spliceIncludes("k.wgsl", '//! include "lib.wgsl"\n// main\n', () => "// lib\n");
 * console.assert(originOf(s, 2).file === "k.wgsl" && originOf(s, 2).line === 2);
 * ```
 */
export function originOf(source: SplicedWgsl, lineNum: number): SourceLine {
  return source.origins[lineNum - 1] ?? { file: source.name, line: lineNum };
}

/**
 * The compiler's errors as `file:line:column: message` lines, positions
 * mapped back through the includes. The compiler's own snippet keeps its
 * source text, with its `wgsl:line:column` references mapped too and its
 * gutter line numbers (which count spliced lines) blanked.
 *
 * @param source the spliced source that was compiled
 * @param errors the error messages of its getCompilationInfo()
 * @returns the report, one message after the other
 *
 * @example
 * ```ts
 * import { describeCompileErrors, spliceIncludes } from "./_wgsl_include.ts";
 * const s = spliceIncludes("k.wgsl", '//! include "lib.wgsl"\nbad\n', () => "// lib\n");
 * const m = { lineNum: 2, linePos: 1, message: "oops" } as GPUCompilationMessage;
 * console.assert(describeCompileErrors(s, [m]) === "k.wgsl:2:1: oops");
 * ```
 */
export function describeCompileErrors(
  source: SplicedWgsl,
  errors: readonly GPUCompilationMessage[],
): string {
  return errors.map((m) => {
    const at = originOf(source, m.lineNum);
    const text = m.message.trim()
      .replace(/\bwgsl:(\d+):(\d+)/g, (_, line: string, column: string) => {
        const o = originOf(source, Number(line));
        return `${o.file}:${o.line}:${column}`;
      })
      .replace(
        /^(\s*)(\d+)( │)/gm,
        (_, pad: string, n: string, bar: string) => pad + " ".repeat(n.length) + bar,
      );
    return `${at.file}:${at.line}:${m.linePos}: ${text}`;
  }).join("\n");
}

/** The lines of a text; a final newline ends the last line rather than starting one. */
function lines(text: string): string[] {
  const all = text.split("\n");
  if (all.at(-1) === "") all.pop();
  return all;
}

/** The file a directive line includes; null for any other line. */
function directive(file: string, line: number, text: string): string | null {
  if (!DIRECTIVE.test(text)) return null;
  const match = INCLUDE.exec(text);
  if (!match) {
    throw new KernelCompileError(
      `${file}:${line}: expected a directive //! include "file.wgsl", got ${text.trim()}`,
    );
  }
  return match[1];
}
