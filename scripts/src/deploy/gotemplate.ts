/**
 * A small implementation of Go's text/template, enough to render this repository's Helm chart
 * where no `helm` binary exists (see helm-render.ts for the chart side and the Sprig functions).
 *
 * It follows Go's semantics where the chart relies on them: whitespace trimming (`{{-`, `-}}`),
 * if/else if/else, range (lists and maps in key order, with `$k, $v :=`), with/else, define and
 * template, variables with block scope and `=` reassignment, pipelines, parenthesised pipelines,
 * short-circuit and/or, Go truthiness, a nil map field being nil, a field on nil being an error,
 * and ints (bigint here) never comparing equal to floats (numbers: what YAML values are in Helm).
 * It is an emulation, not Go: `helm template` remains the reference (docs/deploying.md).
 */

export type Value = unknown;
export type TemplateFunction = (...args: Value[]) => Value;

export class TemplateError extends Error {
  override name = 'TemplateError';
}

// ---------------------------------------------------------------------------------------------
// Lexing: text and actions

interface TextPiece {
  kind: 'text';
  text: string;
}
interface ActionPiece {
  kind: 'action';
  body: string;
  line: number;
}
type Piece = TextPiece | ActionPiece;

function splitPieces(source: string, name: string): Piece[] {
  const pieces: Piece[] = [];
  let pos = 0;
  let trimNext = false;
  while (pos < source.length) {
    const open = source.indexOf('{{', pos);
    let text = open === -1 ? source.slice(pos) : source.slice(pos, open);
    if (trimNext) text = text.replace(/^\s+/, '');
    trimNext = false;
    if (open === -1) {
      pieces.push({ kind: 'text', text });
      break;
    }
    let bodyStart = open + 2;
    let leftTrim = false;
    if (/^-\s/.test(source.slice(bodyStart, bodyStart + 2))) {
      text = text.replace(/\s+$/, '');
      bodyStart += 1;
      leftTrim = true;
    }
    pieces.push({ kind: 'text', text });
    const line = source.slice(0, open).split('\n').length;
    let close: number;
    // Go: a comment starts right at `{{` or after `{{- `, and its `*/` is right before `}}` or ` -}}`.
    const commentStart = leftTrim ? bodyStart + 1 : bodyStart;
    if (source.startsWith('/*', commentStart)) {
      const commentEnd = source.indexOf('*/', commentStart + 2);
      if (commentEnd === -1) throw new TemplateError(`${name}:${line}: unclosed comment`);
      if (source.startsWith('}}', commentEnd + 2)) close = commentEnd + 2;
      else if (/^\s-}}/.test(source.slice(commentEnd + 2, commentEnd + 6))) close = commentEnd + 4;
      else throw new TemplateError(`${name}:${line}: comment ends before closing delimiter`);
    } else if (source.slice(bodyStart).trimStart().startsWith('/*')) {
      throw new TemplateError(`${name}:${line}: unrecognized character in action: U+002F '/' (a comment must start right after {{ or {{- )`);
    } else {
      close = findActionEnd(source, bodyStart);
    }
    if (close === -1) throw new TemplateError(`${name}:${line}: unclosed action`);
    let body = source.slice(bodyStart, close);
    if (/\s-$/.test(body)) {
      body = body.slice(0, -1);
      trimNext = true;
    }
    pos = close + 2;
    if (body.trim().startsWith('/*')) continue;
    pieces.push({ kind: 'action', body: body.trim(), line });
  }
  return pieces;
}

/** The `}}` closing an action, skipping quoted strings. */
function findActionEnd(source: string, from: number): number {
  let i = from;
  while (i < source.length) {
    const c = source[i];
    if (c === '"') {
      i++;
      while (i < source.length && source[i] !== '"') i += source[i] === '\\' ? 2 : 1;
    } else if (c === '`') {
      i = source.indexOf('`', i + 1);
      if (i === -1) return -1;
    } else if (c === '}' && source[i + 1] === '}') {
      return i;
    }
    i++;
  }
  return -1;
}

type Token =
  | { t: 'string'; v: string }
  | { t: 'number'; v: string }
  | { t: 'bool'; v: boolean }
  | { t: 'nil' }
  | { t: 'field'; path: string[] }
  | { t: 'var'; name: string; path: string[] }
  | { t: 'ident'; v: string }
  | { t: 'op'; v: '|' | '(' | ')' | ':=' | '=' | ',' }
  | { t: 'fieldAfterParen'; path: string[] };

function tokenize(body: string, where: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  const fieldPath = (): string[] => {
    const path: string[] = [];
    while (body[i] === '.' && /[A-Za-z_]/.test(body[i + 1] ?? '')) {
      i++;
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(body.slice(i));
      path.push(m![0]);
      i += m![0].length;
    }
    return path;
  };
  while (i < body.length) {
    const c = body[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '"') {
      let j = i + 1;
      while (j < body.length && body[j] !== '"') j += body[j] === '\\' ? 2 : 1;
      tokens.push({ t: 'string', v: JSON.parse(body.slice(i, j + 1)) as string });
      i = j + 1;
    } else if (c === '`') {
      const j = body.indexOf('`', i + 1);
      tokens.push({ t: 'string', v: body.slice(i + 1, j) });
      i = j + 1;
    } else if (c === ':' && body[i + 1] === '=') {
      tokens.push({ t: 'op', v: ':=' });
      i += 2;
    } else if (c === '|' || c === '(' || c === '=' || c === ',') {
      tokens.push({ t: 'op', v: c });
      i++;
    } else if (c === ')') {
      tokens.push({ t: 'op', v: ')' });
      i++;
      if (body[i] === '.' && /[A-Za-z_]/.test(body[i + 1] ?? '')) tokens.push({ t: 'fieldAfterParen', path: fieldPath() });
    } else if (c === '.') {
      if (/[A-Za-z_]/.test(body[i + 1] ?? '')) tokens.push({ t: 'field', path: fieldPath() });
      else {
        tokens.push({ t: 'field', path: [] });
        i++;
      }
    } else if (c === '$') {
      const m = /^\$[A-Za-z0-9_]*/.exec(body.slice(i))!;
      i += m[0].length;
      tokens.push({ t: 'var', name: m[0], path: fieldPath() });
    } else if (/[-0-9]/.test(c)) {
      const m = /^-?[0-9]+(\.[0-9]+)?/.exec(body.slice(i));
      if (!m) throw new TemplateError(`${where}: cannot read "${body.slice(i)}"`);
      tokens.push({ t: 'number', v: m[0] });
      i += m[0].length;
    } else if (/[A-Za-z_]/.test(c)) {
      const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(body.slice(i))!;
      i += m[0].length;
      if (m[0] === 'true' || m[0] === 'false') tokens.push({ t: 'bool', v: m[0] === 'true' });
      else if (m[0] === 'nil') tokens.push({ t: 'nil' });
      else tokens.push({ t: 'ident', v: m[0] });
    } else {
      throw new TemplateError(`${where}: unexpected "${c}" in {{${body}}}`);
    }
  }
  return tokens;
}

// ---------------------------------------------------------------------------------------------
// Parsing

type Operand =
  | { k: 'literal'; v: Value }
  | { k: 'field'; path: string[] }
  | { k: 'var'; name: string; path: string[] }
  | { k: 'ident'; name: string }
  | { k: 'pipe'; pipe: Pipeline; path: string[] };

interface Command {
  operands: Operand[];
}

interface Pipeline {
  decl: string[];
  assign: boolean;
  commands: Command[];
  where: string;
}

type Node =
  | { k: 'text'; text: string }
  | { k: 'action'; pipe: Pipeline }
  | { k: 'if' | 'with'; pipe: Pipeline; list: Node[]; elseList: Node[] }
  | { k: 'range'; pipe: Pipeline; list: Node[]; elseList: Node[] }
  | { k: 'template'; name: string; pipe: Pipeline | null; where: string }
  | { k: 'break' | 'continue' };

function parsePipeline(tokens: Token[], where: string): Pipeline {
  let pos = 0;
  const decl: string[] = [];
  let assign = false;
  // `$x :=`, `$k, $v :=`, `$x =`
  const declEnd = tokens.findIndex((t) => t.t === 'op' && (t.v === ':=' || t.v === '='));
  if (declEnd > 0 && tokens.slice(0, declEnd).every((t) => t.t === 'var' || (t.t === 'op' && t.v === ','))) {
    for (const t of tokens.slice(0, declEnd)) if (t.t === 'var') decl.push(t.name);
    assign = (tokens[declEnd] as { v: string }).v === '=';
    pos = declEnd + 1;
  }
  const commands: Command[] = [];
  let operands: Operand[] = [];
  const readOperand = (): Operand => {
    const t = tokens[pos++]!;
    switch (t.t) {
      case 'string':
        return { k: 'literal', v: t.v };
      case 'number':
        return { k: 'literal', v: t.v.includes('.') ? Number(t.v) : BigInt(t.v) };
      case 'bool':
        return { k: 'literal', v: t.v };
      case 'nil':
        return { k: 'literal', v: null };
      case 'field':
        return { k: 'field', path: t.path };
      case 'var':
        return { k: 'var', name: t.name, path: t.path };
      case 'ident':
        return { k: 'ident', name: t.v };
      case 'op':
        if (t.v === '(') {
          let depth = 1;
          const start = pos;
          while (pos < tokens.length && depth > 0) {
            const u = tokens[pos++]!;
            if (u.t === 'op' && u.v === '(') depth++;
            if (u.t === 'op' && u.v === ')') depth--;
          }
          if (depth !== 0) throw new TemplateError(`${where}: unclosed (`);
          const inner = parsePipeline(tokens.slice(start, pos - 1), where);
          const after = tokens[pos];
          if (after?.t === 'fieldAfterParen') {
            pos++;
            return { k: 'pipe', pipe: inner, path: after.path };
          }
          return { k: 'pipe', pipe: inner, path: [] };
        }
        throw new TemplateError(`${where}: unexpected "${t.v}"`);
      default:
        throw new TemplateError(`${where}: unexpected token`);
    }
  };
  while (pos < tokens.length) {
    const t = tokens[pos]!;
    if (t.t === 'op' && t.v === '|') {
      if (!operands.length) throw new TemplateError(`${where}: missing command before |`);
      commands.push({ operands });
      operands = [];
      pos++;
      continue;
    }
    operands.push(readOperand());
  }
  if (operands.length) commands.push({ operands });
  if (!commands.length && !decl.length) throw new TemplateError(`${where}: missing value`);
  return { decl, assign, commands, where };
}

const KEYWORDS = new Set(['if', 'else', 'end', 'range', 'with', 'define', 'template', 'block', 'break', 'continue']);

export interface ParsedTemplate {
  name: string;
  root: Node[];
  defines: Map<string, Node[]>;
}

export function parseTemplate(source: string, name: string): ParsedTemplate {
  const pieces = splitPieces(source, name);
  const defines = new Map<string, Node[]>();
  let pos = 0;

  // Parses nodes until one of `stops` ({{end}}, {{else ...}}); returns the nodes and the stop action.
  function parseList(stops: string[]): { nodes: Node[]; stop: ActionPiece | null } {
    const nodes: Node[] = [];
    while (pos < pieces.length) {
      const piece = pieces[pos++]!;
      if (piece.kind === 'text') {
        if (piece.text) nodes.push({ k: 'text', text: piece.text });
        continue;
      }
      const where = `${name}:${piece.line}`;
      const word = /^[A-Za-z_]+/.exec(piece.body)?.[0] ?? '';
      const rest = piece.body.slice(word.length).trim();
      if (!KEYWORDS.has(word)) {
        nodes.push({ k: 'action', pipe: parsePipeline(tokenize(piece.body, where), where) });
        continue;
      }
      if (word === 'end' || word === 'else') {
        if (!stops.includes(word)) throw new TemplateError(`${where}: unexpected {{${piece.body}}}`);
        return { nodes, stop: piece };
      }
      if (word === 'break' || word === 'continue') {
        nodes.push({ k: word });
        continue;
      }
      if (word === 'if' || word === 'with' || word === 'range') nodes.push(parseBlock(word, rest, where));
      else if (word === 'define') {
        const tokens = tokenize(rest, where);
        const first = tokens[0];
        if (first?.t !== 'string') throw new TemplateError(`${where}: define needs a quoted name`);
        const { nodes: body, stop } = parseList(['end']);
        if (!stop) throw new TemplateError(`${where}: define "${first.v}" has no {{end}}`);
        if (stops.length) throw new TemplateError(`${where}: define "${first.v}" is not at the top level`);
        defines.set(first.v, body);
      } else if (word === 'template') {
        const tokens = tokenize(rest, where);
        const first = tokens[0];
        if (first?.t !== 'string') throw new TemplateError(`${where}: template needs a quoted name`);
        nodes.push({ k: 'template', name: first.v, pipe: tokens.length > 1 ? parsePipeline(tokens.slice(1), where) : null, where });
      } else {
        throw new TemplateError(`${where}: {{${word}}} is not supported here`);
      }
    }
    if (stops.length) throw new TemplateError(`${name}: unexpected end of template: missing {{end}}`);
    return { nodes, stop: null };
  }

  function parseBlock(word: 'if' | 'with' | 'range', rest: string, where: string): Node {
    const pipe = parsePipeline(tokenize(rest, where), where);
    const { nodes: list, stop } = parseList(['end', 'else']);
    if (!stop) throw new TemplateError(`${where}: {{${word}}} has no {{end}}`);
    let elseList: Node[] = [];
    if (stop.body.startsWith('else')) {
      const elseRest = stop.body.slice(4).trim();
      const elseWord = /^[A-Za-z_]+/.exec(elseRest)?.[0];
      if (elseWord === 'if' || elseWord === 'with') {
        // `{{else if x}}` is `{{else}}{{if x}}...{{end}}` sharing the outer {{end}}.
        elseList = [parseBlock(elseWord, elseRest.slice(elseWord.length).trim(), `${name}:${stop.line}`)];
      } else {
        const { nodes, stop: end } = parseList(['end']);
        if (!end) throw new TemplateError(`${where}: {{else}} has no {{end}}`);
        elseList = nodes;
      }
    }
    return { k: word, pipe, list, elseList };
  }

  const { nodes } = parseList([]);
  checkVariables(nodes, [new Set(['$'])]);
  for (const body of defines.values()) checkVariables(body, [new Set(['$'])]);
  return { name, root: nodes, defines };
}

/**
 * Go's parser refuses a variable used where none of that name is in scope, whether or not the
 * branch ever runs. A variable lives until the {{end}} of the if/with/range it is declared in,
 * pipeline and {{else}} included; a define starts with only `$`.
 */
function checkVariables(nodes: Node[], scopes: Set<string>[]): void {
  const defined = (name: string) => scopes.some((scope) => scope.has(name));
  const undefinedVariable = (where: string, name: string) => new TemplateError(`${where}: undefined variable "${name}"`);
  const usePipe = (pipe: Pipeline) => {
    if (pipe.assign) {
      for (const name of pipe.decl) if (!defined(name)) throw undefinedVariable(pipe.where, name);
    } else {
      for (const name of pipe.decl) scopes[scopes.length - 1]!.add(name);
    }
    for (const command of pipe.commands) {
      for (const operand of command.operands) {
        if (operand.k === 'var' && !defined(operand.name)) throw undefinedVariable(pipe.where, operand.name);
        if (operand.k === 'pipe') usePipe(operand.pipe);
      }
    }
  };
  for (const node of nodes) {
    if (node.k === 'action') usePipe(node.pipe);
    else if (node.k === 'template') {
      if (node.pipe) usePipe(node.pipe);
    } else if (node.k === 'if' || node.k === 'with' || node.k === 'range') {
      scopes.push(new Set());
      usePipe(node.pipe);
      checkVariables(node.list, scopes);
      checkVariables(node.elseList, scopes);
      scopes.pop();
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Evaluation

export function isTrue(v: Value): boolean {
  if (v === null || v === undefined) return false;
  if (typeof v === 'boolean') return v;
  if (typeof v === 'number') return v !== 0;
  if (typeof v === 'bigint') return v !== 0n;
  if (typeof v === 'string') return v.length > 0;
  if (Array.isArray(v)) return v.length > 0;
  if (typeof v === 'object') return Object.keys(v).length > 0;
  return true;
}

/** Go's %v for a float64 (%g, shortest): exponent form when the exponent is below -4 or at least 6, so 1e6 prints "1e+06". */
export function formatFloat(n: number): string {
  if (!Number.isFinite(n)) return n > 0 ? '+Inf' : n < 0 ? '-Inf' : 'NaN';
  if (n === 0) return '0';
  const exp = Math.floor(Math.log10(Math.abs(n)));
  if (exp < -4 || exp >= 6) {
    const [mantissa, e] = n.toExponential().split('e');
    const sign = e!.startsWith('-') ? '-' : '+';
    const digits = e!.replace(/^[-+]/, '').padStart(2, '0');
    return `${mantissa}e${sign}${digits}`;
  }
  return String(n);
}

export function printValue(v: Value): string {
  if (v === null || v === undefined) return '<no value>';
  if (typeof v === 'string') return v;
  if (typeof v === 'number') return formatFloat(v);
  if (typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map(printValue).join(' ')}]`;
  if (typeof v === 'object') {
    return `map[${Object.keys(v)
      .sort()
      .map((k) => `${k}:${printValue((v as Record<string, Value>)[k])}`)
      .join(' ')}]`;
  }
  return String(v);
}

class Scope {
  private readonly vars = new Map<string, Value>();
  constructor(private readonly parent: Scope | null) {}
  declare(name: string, value: Value): void {
    this.vars.set(name, value);
  }
  assign(name: string, value: Value, where: string): void {
    if (this.vars.has(name)) this.vars.set(name, value);
    else if (this.parent) this.parent.assign(name, value, where);
    else throw new TemplateError(`${where}: undefined variable ${name}`);
  }
  get(name: string, where: string): Value {
    if (this.vars.has(name)) return this.vars.get(name);
    if (this.parent) return this.parent.get(name, where);
    throw new TemplateError(`${where}: undefined variable: ${name}`);
  }
}

class BreakSignal {
  constructor(readonly kind: 'break' | 'continue') {}
}

function fieldOf(value: Value, path: string[], where: string, describe: string): Value {
  let current = value;
  let walked = describe;
  for (const key of path) {
    if (current === null || current === undefined) {
      throw new TemplateError(`${where}: nil pointer evaluating interface {}.${key} (${walked} is nil)`);
    }
    if (typeof current !== 'object' || Array.isArray(current)) {
      throw new TemplateError(`${where}: can't evaluate field ${key} in type ${Array.isArray(current) ? 'slice' : typeof current} (${walked})`);
    }
    const next = (current as Record<string, Value>)[key];
    current = typeof next === 'function' ? (next as TemplateFunction).bind(current) : next;
    walked += `.${key}`;
  }
  return current;
}

export interface ExecuteOptions {
  functions: Record<string, TemplateFunction>;
  /** Every named template of the chart (define), shared by all files. */
  defines: Map<string, Node[]>;
  /** Called for every field path read from the root data (e.g. ['Values', 'worker', 'port']). */
  onField?: (path: string[]) => void;
}

export class Executor {
  constructor(private readonly options: ExecuteOptions) {}

  /** Renders the nodes with `dot` as both `.` and `$`. */
  render(nodes: Node[], dot: Value): string {
    const scope = new Scope(null);
    scope.declare('$', dot);
    const out: string[] = [];
    this.walk(nodes, dot, scope, out);
    return out.join('');
  }

  renderNamed(name: string, dot: Value, where: string): string {
    const body = this.options.defines.get(name);
    if (!body) throw new TemplateError(`${where}: no template "${name}" associated with template`);
    return this.render(body, dot);
  }

  private walk(nodes: Node[], dot: Value, scope: Scope, out: string[]): void {
    for (const node of nodes) {
      switch (node.k) {
        case 'text':
          out.push(node.text);
          break;
        case 'action': {
          const value = this.pipeline(node.pipe, dot, scope);
          if (!node.pipe.decl.length) out.push(printValue(value));
          break;
        }
        // A variable the pipeline declares is in scope in {{else}} too (Go pops it at {{end}}).
        case 'if': {
          const inner = new Scope(scope);
          if (isTrue(this.pipeline(node.pipe, dot, inner))) this.walk(node.list, dot, inner, out);
          else this.walk(node.elseList, dot, inner, out);
          break;
        }
        case 'with': {
          const inner = new Scope(scope);
          const value = this.pipeline(node.pipe, dot, inner);
          if (isTrue(value)) this.walk(node.list, value, inner, out);
          else this.walk(node.elseList, dot, inner, out);
          break;
        }
        case 'range':
          this.range(node, dot, scope, out);
          break;
        case 'template': {
          const value = node.pipe ? this.pipeline(node.pipe, dot, scope) : null;
          out.push(this.renderNamed(node.name, value, node.where));
          break;
        }
        case 'break':
        case 'continue':
          throw new BreakSignal(node.k);
      }
    }
  }

  private range(node: Extract<Node, { k: 'range' }>, dot: Value, scope: Scope, out: string[]): void {
    const { decl } = node.pipe;
    const collection = this.pipeline({ ...node.pipe, decl: [] }, dot, scope);
    let entries: [Value, Value][];
    if (collection === null || collection === undefined) entries = [];
    else if (Array.isArray(collection)) entries = collection.map((v, i) => [BigInt(i), v]);
    else if (typeof collection === 'object') {
      entries = Object.keys(collection)
        .sort()
        .map((k) => [k, (collection as Record<string, Value>)[k]]);
    } else if (typeof collection === 'bigint') {
      entries = Array.from({ length: Number(collection) }, (_, i) => [BigInt(i), BigInt(i)]);
    } else throw new TemplateError(`${node.pipe.where}: range can't iterate over ${printValue(collection)}`);
    if (!entries.length) {
      this.walk(node.elseList, dot, new Scope(scope), out);
      return;
    }
    for (const [key, value] of entries) {
      const inner = new Scope(scope);
      if (decl.length === 1) inner.declare(decl[0]!, value);
      if (decl.length === 2) {
        inner.declare(decl[0]!, key);
        inner.declare(decl[1]!, value);
      }
      try {
        this.walk(node.list, value, inner, out);
      } catch (signal) {
        if (!(signal instanceof BreakSignal)) throw signal;
        if (signal.kind === 'break') break;
      }
    }
  }

  private pipeline(pipe: Pipeline, dot: Value, scope: Scope): Value {
    let value: Value = undefined;
    let first = true;
    for (const command of pipe.commands) {
      value = this.command(command, dot, scope, pipe.where, first ? undefined : { value });
      first = false;
    }
    if (pipe.decl.length) {
      if (pipe.assign) scope.assign(pipe.decl[0]!, value, pipe.where);
      else scope.declare(pipe.decl[0]!, value);
    }
    return value;
  }

  private command(command: Command, dot: Value, scope: Scope, where: string, piped?: { value: Value }): Value {
    const [head, ...rest] = command.operands;
    if (!head) throw new TemplateError(`${where}: empty command`);
    if (head.k === 'ident') {
      const name = head.name;
      if (name === 'and' || name === 'or') {
        const args = rest.map((operand) => () => this.operand(operand, dot, scope, where));
        if (piped) args.push(() => piped.value);
        let last: Value = undefined;
        for (const arg of args) {
          last = arg();
          if (name === 'and' ? !isTrue(last) : isTrue(last)) return last;
        }
        return last;
      }
      const fn = this.options.functions[name];
      if (!fn) throw new TemplateError(`${where}: function "${name}" not defined`);
      const args = rest.map((operand) => this.operand(operand, dot, scope, where));
      if (piped) args.push(piped.value);
      try {
        return fn(...args);
      } catch (error) {
        if (error instanceof TemplateError) throw error;
        throw new TemplateError(`${where}: error calling ${name}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
    const value = this.operand(head, dot, scope, where);
    if (typeof value === 'function') {
      const args = rest.map((operand) => this.operand(operand, dot, scope, where));
      if (piped) args.push(piped.value);
      return (value as TemplateFunction)(...args);
    }
    if (rest.length || piped) throw new TemplateError(`${where}: can't give argument to non-function ${printValue(value)}`);
    return value;
  }

  private operand(operand: Operand, dot: Value, scope: Scope, where: string): Value {
    switch (operand.k) {
      case 'literal':
        return operand.v;
      case 'field':
        if (operand.path.length && this.options.onField && dot === scope.get('$', where)) this.options.onField(operand.path);
        return fieldOf(dot, operand.path, where, '.');
      case 'var': {
        const base = scope.get(operand.name, where);
        if (operand.name === '$' && operand.path.length && this.options.onField) this.options.onField(operand.path);
        return fieldOf(base, operand.path, where, operand.name);
      }
      case 'pipe':
        return fieldOf(this.pipeline(operand.pipe, dot, scope), operand.path, where, '(...)');
      case 'ident': {
        const fn = this.options.functions[operand.name];
        if (!fn) throw new TemplateError(`${where}: function "${operand.name}" not defined`);
        return fn();
      }
    }
  }
}
