const mods = Deno.args;
let t = performance.now();
console.log("start", t.toFixed(1));
for (const m of mods) {
  await import(m);
  const n = performance.now();
  console.log(m, (n - t).toFixed(1));
  t = n;
}
