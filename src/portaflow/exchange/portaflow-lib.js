// portaflow's template language for CWL expressions (written by `portaflow export cwl`; ECMAScript 5.1).
// A step's templates reach this code as data (`pf_spec`, one per tool): literal text and field names, never code.
// Values are filled in as portaflow fills them (src/portaflow/plan/templates.py): Python's str() in paths and
// arguments, each value shell-quoted (shlex.quote) in commands, Python's JSON in the payload of Python steps.
/* global pf_spec */

function pf_pyfloat(x) {  // Python's repr(float): '2.0', '1e-05', '1.5e+16'
  if (isNaN(x)) { return "nan"; }
  if (!isFinite(x)) { return x > 0 ? "inf" : "-inf"; }
  var parts = x.toExponential().split("e");  // the shortest digits that round-trip, as Python's
  var exp = parseInt(parts[1], 10);
  if (exp < -4 || exp >= 16) {
    var a = Math.abs(exp);
    return parts[0] + "e" + (exp < 0 ? "-" : "+") + (a < 10 ? "0" + a : "" + a);
  }
  var s = String(x);
  return s.indexOf(".") < 0 ? s + ".0" : s;
}

function pf_item_type(t) { return t.indexOf("list:") === 0 ? t.slice(5) : "any"; }

function pf_repr_str(s) {  // Python's repr(str), for strings inside a list
  var q = (s.indexOf("'") >= 0 && s.indexOf('"') < 0) ? '"' : "'";
  var out = s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/\r/g, "\\r").replace(/\t/g, "\\t");
  if (q === "'") { out = out.replace(/'/g, "\\'"); }
  return q + out + q;
}

function pf_str(v, t) {  // Python's str(v), `t` the value's portaflow type ('int', 'float', 'list:str', ...)
  if (typeof v === "number" && t === "float") { return pf_pyfloat(v); }
  if (typeof v === "boolean") { return v ? "True" : "False"; }
  if (v === null || v === undefined) { return "None"; }
  if (Array.isArray(v)) {
    var it = pf_item_type(t);
    return "[" + v.map(function (x) { return typeof x === "string" ? pf_repr_str(x) : pf_str(x, it); }).join(", ") + "]";
  }
  return String(v);
}

function pf_quote(s) {  // shlex.quote
  if (s === "") { return "''"; }
  if (/^[A-Za-z0-9_@%+=:,.\/-]+$/.test(s)) { return s; }
  return "'" + s.replace(/'/g, "'\"'\"'") + "'";
}

function pf_quote_value(v, t) {  // portaflow.plan.templates.quote_value
  if (Array.isArray(v)) {
    var it = pf_item_type(t);
    return v.map(function (x) { return pf_quote(pf_str(x, it)); }).join(" ");
  }
  if (typeof v === "boolean") { return v ? "true" : "false"; }
  return pf_quote(pf_str(v, t));
}

function pf_json(v, t) {  // Python's json.dumps(v): floats stay floats ('2.0'), so the callable sees the types it would
  if (v === null || v === undefined) { return "null"; }
  if (typeof v === "number" && t === "float") {
    if (!isFinite(v)) { return isNaN(v) ? "NaN" : (v > 0 ? "Infinity" : "-Infinity"); }
    return pf_pyfloat(v);
  }
  if (Array.isArray(v)) {
    var it = pf_item_type(t);
    return "[" + v.map(function (x) { return pf_json(x, it); }).join(",") + "]";
  }
  if (typeof v === "object") {
    return "{" + Object.keys(v).map(function (k) { return JSON.stringify(k) + ":" + pf_json(v[k], "any"); }).join(",") + "}";
  }
  return JSON.stringify(v);
}

function pf_value(name, inputs) {  // {v: value, t: type} of one template field
  var f = pf_spec.fields[name];
  var kind = f[0];
  if (kind === "in") { return {v: inputs[f[1]], t: f[2]}; }
  if (kind === "const") { return {v: f[1], t: f[2]}; }
  if (kind === "file") { return {v: inputs[f[1]].path, t: "str"}; }
  if (kind === "files") { return {v: inputs[f[1]].map(function (x) { return x.path; }), t: "list:str"}; }
  if (kind === "out") { return {v: pf_render(pf_spec.outputs[f[1]], inputs, false), t: "str"}; }
  throw "portaflow: unknown field " + name;
}

function pf_render(parts, inputs, quoted) {  // a template: literal strings and [field] lists
  return parts.map(function (p) {
    if (typeof p === "string") { return p; }
    var x = pf_value(p[0], inputs);
    return quoted ? pf_quote_value(x.v, x.t) : pf_str(x.v, x.t);
  }).join("");
}

function pf_output(inputs, key) { return pf_render(pf_spec.outputs[key], inputs, false); }

function pf_env(inputs, name) { return pf_render(pf_spec.env[name], inputs, false); }

function pf_dirname(path) { var i = path.lastIndexOf("/"); return i > 0 ? path.slice(0, i) : ""; }

function pf_command(inputs) {  // a command step: its outputs' folders, then its command (portaflow's strict bash)
  var dirs = [];
  Object.keys(pf_spec.outputs).forEach(function (k) {
    var d = pf_dirname(pf_output(inputs, k));
    if (d && dirs.indexOf(d) < 0) { dirs.push(d); }
  });
  var mkdir = dirs.length ? "mkdir -p -- " + dirs.map(pf_quote).join(" ") + "\n" : "";
  return "set -eo pipefail\n" + mkdir + pf_render(pf_spec.command, inputs, true);
}

function pf_arg(node, inputs) {  // a callable's argument as JSON: {d: pairs} {l: list} {f: field} {t: template} {v: value, ty: type}
  if (node.d !== undefined) {
    return "{" + node.d.map(function (kv) { return JSON.stringify(kv[0]) + ":" + pf_arg(kv[1], inputs); }).join(",") + "}";
  }
  if (node.l !== undefined) { return "[" + node.l.map(function (n) { return pf_arg(n, inputs); }).join(",") + "]"; }
  if (node.f !== undefined) { var x = pf_value(node.f, inputs); return pf_json(x.v, x.t); }
  if (node.t !== undefined) { return JSON.stringify(pf_render(node.t, inputs, false)); }
  return pf_json(node.v, node.ty);
}

function pf_payload(inputs) {  // the one argument of `python -m portaflow.runtime.call`
  var ins = Object.keys(pf_spec.inputs).map(function (k) {
    var x = pf_value(pf_spec.inputs[k], inputs);
    return JSON.stringify(k) + ":" + pf_json(x.v, x.t);
  });
  var outs = Object.keys(pf_spec.outputs).map(function (k) { return JSON.stringify(k) + ":" + JSON.stringify(pf_output(inputs, k)); });
  return "{\"target\":" + JSON.stringify(pf_spec.target) + ",\"dask\":" + (pf_spec.dask ? "true" : "false")
    + ",\"inputs\":{" + ins.join(",") + "},\"outputs\":{" + outs.join(",") + "},\"args\":" + pf_arg(pf_spec.args, inputs) + "}";
}

function pf_same(a, b) { return a === b || JSON.stringify(a) === JSON.stringify(b); }

function pf_pick(self, inputs, vars, values, table) {
  // A step input's files for this task: `self` is every file its sources make (flattened), `table` lists, per task of
  // the step (in scatter order), the index or indexes into it; the task is found from its scatter values.
  var index = 0;
  for (var i = 0; i < vars.length; i++) {
    var pos = -1;
    for (var j = 0; j < values[i].length; j++) { if (pf_same(values[i][j], inputs[vars[i]])) { pos = j; break; } }
    if (pos < 0) { throw "portaflow: scatter value " + JSON.stringify(inputs[vars[i]]) + " of " + vars[i] + " is not among the exported ones"; }
    index = index * values[i].length + pos;
  }
  var entry = table[index];
  if (Array.isArray(entry)) { return entry.map(function (k) { return self[k]; }); }
  return self[entry];
}
