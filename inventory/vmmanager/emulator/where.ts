// The `where` filter of VMmanager list endpoints as the emulator understands it:
// `(field EQ 'text')`, `(field EQ 12)`, `NE`, `CP` (contains), AND/OR and parentheses.
// Nested fields use dots (`cluster.id EQ 1`). Anything else is a syntax error (HTTP 400).

type Node =
  | { kind: "cmp"; field: string; op: "EQ" | "NE" | "CP"; value: string | number }
  | { kind: "bool"; op: "AND" | "OR"; left: Node; right: Node };

export class WhereSyntaxError extends Error {}

function tokenize(src: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < src.length) {
    const c = src[i];
    if (/\s|\+/.test(c)) { i++; continue; }
    if (c === "(" || c === ")") { out.push(c); i++; continue; }
    if (c === "'") {
      let s = "'";
      i++;
      while (i < src.length && src[i] !== "'") {
        if (src[i] === "\\" && i + 1 < src.length) i++;
        s += src[i++];
      }
      if (src[i] !== "'") throw new WhereSyntaxError(`unterminated string in where filter: ${src}`);
      i++;
      out.push(s + "'");
      continue;
    }
    const m = /^[A-Za-z0-9_.\-:]+/.exec(src.slice(i));
    if (!m) throw new WhereSyntaxError(`unexpected character ${JSON.stringify(c)} in where filter: ${src}`);
    out.push(m[0]);
    i += m[0].length;
  }
  return out;
}

export function parseWhere(src: string): Node {
  const toks = tokenize(src);
  let p = 0;
  const peek = () => toks[p];
  const next = () => {
    if (p >= toks.length) throw new WhereSyntaxError(`where filter ends early: ${src}`);
    return toks[p++];
  };
  const primary = (): Node => {
    if (peek() === "(") {
      next();
      const n = or();
      if (next() !== ")") throw new WhereSyntaxError(`missing ')' in where filter: ${src}`);
      return n;
    }
    const field = next();
    const op = next();
    if (op !== "EQ" && op !== "NE" && op !== "CP") throw new WhereSyntaxError(`unknown operator ${op} in where filter: ${src}`);
    const raw = next();
    const value = raw.startsWith("'") ? raw.slice(1, -1) : /^-?\d+$/.test(raw) ? Number(raw) : raw;
    return { kind: "cmp", field, op, value };
  };
  const and = (): Node => {
    let n = primary();
    while (peek() === "AND") { next(); n = { kind: "bool", op: "AND", left: n, right: primary() }; }
    return n;
  };
  const or = (): Node => {
    let n = and();
    while (peek() === "OR") { next(); n = { kind: "bool", op: "OR", left: n, right: and() }; }
    return n;
  };
  const tree = or();
  if (p !== toks.length) throw new WhereSyntaxError(`unexpected ${toks[p]} in where filter: ${src}`);
  return tree;
}

function fieldOf(obj: unknown, path: string): unknown {
  return path.split(".").reduce<unknown>((o, k) => (o && typeof o === "object" ? (o as Record<string, unknown>)[k] : undefined), obj);
}

export function matches(node: Node, obj: unknown): boolean {
  if (node.kind === "bool") return node.op === "AND" ? matches(node.left, obj) && matches(node.right, obj) : matches(node.left, obj) || matches(node.right, obj);
  const v = fieldOf(obj, node.field);
  // VMmanager compares ids given as '12' or 12 alike
  const eq = v !== undefined && v !== null && String(v) === String(node.value);
  if (node.op === "EQ") return eq;
  if (node.op === "NE") return !eq;
  return v !== undefined && v !== null && String(v).includes(String(node.value));
}
