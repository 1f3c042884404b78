/**
 * The PyYAML emulation. Expected strings are what PyYAML 6 writes for
 * `yaml.dump(x, sort_keys=False, default_flow_style=None, width=88, allow_unicode=True)`.
 */
import assert from "node:assert/strict";
import { dumpPyYaml, PyFloat, pyFloatRepr } from "../../src/recipe/_pyyaml.ts";

Deno.test("Python float repr as PyYAML prints it", () => {
  const cases: [number, string][] = [
    [0.01, "0.01"],
    [1, "1.0"],
    [0, "0.0"],
    [-0, "-0.0"],
    [-1.5, "-1.5"],
    [1e-5, "1.0e-05"],
    [1.5e-7, "1.5e-07"],
    [0.0001, "0.0001"],
    [123456.789, "123456.789"],
    [1e15, "1000000000000000.0"],
    [1e16, "1.0e+16"],
    [2.5e20, "2.5e+20"],
    [0.1 + 0.2, "0.30000000000000004"],
    [Infinity, ".inf"],
    [-Infinity, "-.inf"],
    [NaN, ".nan"],
  ];
  for (const [x, want] of cases) assert.equal(pyFloatRepr(x), want, String(x));
});

Deno.test("leaf collections flow, others block; sequences under a key are not indented", () => {
  const text = dumpPyYaml({
    a: { b: [1, "x"], c: {}, d: [], e: { f: 1, g: null } },
    h: [[["p", "q"], "r"], { s: true }],
  });
  assert.equal(
    text,
    `a:
  b: [1, x]
  c: {}
  d: []
  e: {f: 1, g: null}
h:
- - [p, q]
  - r
- {s: true}
`,
  );
});

Deno.test("strings are quoted exactly where PyYAML quotes them", () => {
  const text = dumpPyYaml({
    plain: "re:.*lm_head",
    inflow: ["re:.*lm_head", "Linear"],
    base60: "2:4",
    zero: "0:0",
    bool: "yes",
    nul: "null",
    empty: "",
    num: "128",
    float: "1.0",
    exp: "1e-3",
    colonspace: "a: b",
    hash: "#x",
    dash: "- x",
    quote: "it's",
    lead: " x",
    tab: "a\tb",
    star: "*x",
    pct: "%x",
    uni: "caf\u00e9",
  });
  assert.equal(
    text,
    `plain: re:.*lm_head
inflow: ['re:.*lm_head', Linear]
base60: '2:4'
zero: 0:0
bool: 'yes'
nul: 'null'
empty: ''
num: '128'
float: '1.0'
exp: 1e-3
colonspace: 'a: b'
hash: '#x'
dash: '- x'
quote: it's
lead: ' x'
tab: "a\\tb"
star: '*x'
pct: '%x'
uni: caf\u00e9
`,
  );
});

Deno.test("ints stay ints, PyFloat marks floats, non-integral numbers are floats", () => {
  assert.equal(
    dumpPyYaml({ k: { a: 1, b: new PyFloat(1), c: 0.5, d: false }, l: [] }),
    "k: {a: 1, b: 1.0, c: 0.5, d: false}\nl: []\n",
  );
  // PyYAML writes even the root in flow style when all its values are scalars.
  assert.equal(dumpPyYaml({ a: 1 }), "{a: 1}\n");
});

Deno.test("a flow sequence wraps once the column passes the width, indented under its key", () => {
  const items = Array.from({ length: 6 }, (_, i) => `re:.*layers.${i}.mlp.down_proj$`);
  const text = dumpPyYaml({ k: { ignore: items } });
  assert.equal(
    text,
    `k:
  ignore: ['re:.*layers.0.mlp.down_proj$', 're:.*layers.1.mlp.down_proj$', 're:.*layers.2.mlp.down_proj$',
    're:.*layers.3.mlp.down_proj$', 're:.*layers.4.mlp.down_proj$', 're:.*layers.5.mlp.down_proj$']
`,
  );
});

Deno.test("Maps keep integer-like keys in insertion order", () => {
  assert.equal(dumpPyYaml(new Map([["2", [1]], ["1", [2]]])), "'2': [1]\n'1': [2]\n");
});

Deno.test("long scalars fold at spaces, multi-line strings are single-quoted, as PyYAML does", () => {
  const fold = dumpPyYaml({
    k: { description: "word ".repeat(25) + "end", list: ["tab\tand space ".repeat(8)] },
  });
  assert.equal(
    fold,
    "k:\n  description: word word word word word word word word word word word word word word word\n" +
      "    word word word word word word word word word word end\n" +
      '  list: ["tab\\tand space tab\\tand space tab\\tand space tab\\tand space tab\\tand space tab\\t\\\n' +
      '      and space tab\\tand space tab\\tand space "]\n',
  );
  const multi = dumpPyYaml({ k: ["line one\nline two", "trailing \n", "\nlead"] });
  assert.equal(multi, "k: ['line one\n\n    line two', \"trailing \\n\", '\n\n    lead']\n");
});
