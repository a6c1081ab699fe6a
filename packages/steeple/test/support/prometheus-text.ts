/**
 * A strict reader of the Prometheus text exposition format 0.0.4, for tests: it parses
 * every line against the grammar (HELP, TYPE, comments, samples with escaped label values
 * and Go-style floats) and checks the rules a scraper relies on: one HELP and TYPE per
 * family before its samples, a family's samples together, no series twice, sample names
 * that fit the family's type, histogram buckets sorted and cumulative with `+Inf` equal to
 * `_count`. It throws an Error naming the line number and the rule broken.
 * @module
 */

export type FamilyType = 'counter' | 'gauge' | 'histogram' | 'summary' | 'untyped';

export interface ParsedSample {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
  readonly line: number;
}

export interface ParsedFamily {
  readonly name: string;
  help?: string;
  type: FamilyType;
  readonly samples: ParsedSample[];
}

const METRIC_NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL_NAME = /^[a-zA-Z_][a-zA-Z0-9_]*$/;
const HELP = new RegExp(`^# HELP (${METRIC_NAME})(?: (.*))?$`);
const TYPE = new RegExp(`^# TYPE (${METRIC_NAME}) (counter|gauge|histogram|summary|untyped)$`);
const SAMPLE_NAME = new RegExp(`^${METRIC_NAME}`);
const FLOAT = /^(?:[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|[+-]?Inf|NaN)$/;
const TIMESTAMP = /^-?\d+$/;
const SUFFIXES: Record<FamilyType, readonly string[]> = {
  counter: [''],
  gauge: [''],
  untyped: [''],
  histogram: ['_bucket', '_sum', '_count'],
  summary: ['', '_sum', '_count'],
};

/** Parses `text`; throws on the first line that breaks the format. */
export function parsePrometheusText(text: string): Map<string, ParsedFamily> {
  if (text !== '' && !text.endsWith('\n')) throw new Error('the text must end with a line feed');
  const families = new Map<string, ParsedFamily>();
  const finished = new Set<string>();
  const seen = new Set<string>();
  const typed = new Set<string>();
  let current: ParsedFamily | undefined;
  const lines = text.split('\n').slice(0, -1);
  const familyOf = (name: string, lineNo: number, fromSample: boolean): ParsedFamily => {
    let family = families.get(name);
    if (family === undefined && fromSample) {
      // A sample without TYPE belongs to the family whose name it extends (histogram parts).
      for (const f of families.values()) {
        if (SUFFIXES[f.type].some((s) => s !== '' && f.name + s === name)) family = f;
      }
    }
    if (family === undefined) {
      family = { name, type: 'untyped', samples: [] };
      families.set(name, family);
    }
    if (family !== current) {
      if (current !== undefined) finished.add(current.name);
      if (finished.has(family.name)) {
        throw new Error(`line ${lineNo}: family ${family.name} appears again after other families`);
      }
      current = family;
    }
    return family;
  };

  lines.forEach((line, i) => {
    const lineNo = i + 1;
    if (line.trim() === '') return;
    if (line.startsWith('#')) {
      const help = HELP.exec(line);
      if (help !== null) {
        const family = familyOf(help[1] as string, lineNo, false);
        if (family.help !== undefined) throw new Error(`line ${lineNo}: second HELP for ${family.name}`);
        if (family.samples.length > 0) throw new Error(`line ${lineNo}: HELP of ${family.name} after its samples`);
        family.help = unescapeHelp(help[2] ?? '', lineNo);
        return;
      }
      const type = TYPE.exec(line);
      if (type !== null) {
        const family = familyOf(type[1] as string, lineNo, false);
        if (family.samples.length > 0) throw new Error(`line ${lineNo}: TYPE of ${family.name} after its samples`);
        if (typed.has(family.name)) throw new Error(`line ${lineNo}: second TYPE for ${family.name}`);
        typed.add(family.name);
        family.type = type[2] as FamilyType;
        return;
      }
      if (/^# (HELP|TYPE)\b/.test(line)) throw new Error(`line ${lineNo}: malformed ${line.slice(2, 6)} line: ${line}`);
      return; // a comment
    }
    const sample = parseSample(line, lineNo);
    const family = familyOf(sample.name, lineNo, true);
    if (!SUFFIXES[family.type].some((s) => family.name + s === sample.name)) {
      throw new Error(`line ${lineNo}: sample ${sample.name} does not fit ${family.type} ${family.name}`);
    }
    const id = `${sample.name}{${Object.entries(sample.labels)
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
      .join(',')}}`;
    if (seen.has(id)) throw new Error(`line ${lineNo}: series ${id} appears twice`);
    seen.add(id);
    family.samples.push(sample);
  });
  for (const family of families.values()) {
    if (family.type === 'histogram') checkHistogram(family);
  }
  return families;
}

function parseSample(line: string, lineNo: number): ParsedSample {
  const nameMatch = SAMPLE_NAME.exec(line);
  if (nameMatch === null) throw new Error(`line ${lineNo}: no metric name at the start of ${JSON.stringify(line)}`);
  const name = nameMatch[0];
  let pos = name.length;
  const labels: Record<string, string> = {};
  if (line[pos] === '{') {
    pos++;
    while (line[pos] !== '}') {
      const eq = line.indexOf('=', pos);
      if (eq < 0) throw new Error(`line ${lineNo}: label without "=" in ${JSON.stringify(line)}`);
      const label = line.slice(pos, eq);
      if (!LABEL_NAME.test(label)) throw new Error(`line ${lineNo}: invalid label name ${JSON.stringify(label)}`);
      if (label in labels) throw new Error(`line ${lineNo}: label ${label} twice`);
      if (line[eq + 1] !== '"') throw new Error(`line ${lineNo}: label value of ${label} must be quoted`);
      let value = '';
      let j = eq + 2;
      for (;;) {
        const c = line[j];
        if (c === undefined) throw new Error(`line ${lineNo}: unterminated label value of ${label}`);
        if (c === '"') break;
        if (c === '\\') {
          const next = line[j + 1];
          if (next === '\\') value += '\\';
          else if (next === '"') value += '"';
          else if (next === 'n') value += '\n';
          else throw new Error(`line ${lineNo}: invalid escape \\${next ?? ''} in label ${label}`);
          j += 2;
          continue;
        }
        value += c;
        j++;
      }
      labels[label] = value;
      pos = j + 1;
      if (line[pos] === ',') pos++;
      else if (line[pos] !== '}') throw new Error(`line ${lineNo}: expected "," or "}" after label ${label}`);
    }
    pos++;
  }
  if (line[pos] !== ' ')
    throw new Error(`line ${lineNo}: expected one space before the value in ${JSON.stringify(line)}`);
  const rest = line.slice(pos + 1).split(' ');
  const [valueText, timestamp, ...extra] = rest;
  if (valueText === undefined || !FLOAT.test(valueText)) {
    throw new Error(`line ${lineNo}: invalid value ${JSON.stringify(valueText)}`);
  }
  if (extra.length > 0 || (timestamp !== undefined && !TIMESTAMP.test(timestamp))) {
    throw new Error(`line ${lineNo}: unexpected text after the value: ${JSON.stringify(rest.slice(1).join(' '))}`);
  }
  const value = valueText.endsWith('Inf')
    ? valueText.startsWith('-')
      ? Number.NEGATIVE_INFINITY
      : Number.POSITIVE_INFINITY
    : Number(valueText);
  return { name, labels, value, line: lineNo };
}

function unescapeHelp(text: string, lineNo: number): string {
  return text.replace(/\\(.?)/g, (_, c: string) => {
    if (c === '\\') return '\\';
    if (c === 'n') return '\n';
    throw new Error(`line ${lineNo}: invalid escape \\${c} in HELP`);
  });
}

/** Buckets sorted by `le`, cumulative, ending with `+Inf` = `_count`, with a `_sum`, per label set. */
function checkHistogram(family: ParsedFamily): void {
  const groups = new Map<string, { buckets: ParsedSample[]; sum?: ParsedSample; count?: ParsedSample }>();
  for (const s of family.samples) {
    const { le, ...rest } = s.labels;
    const key = JSON.stringify(Object.entries(rest).sort(([a], [b]) => (a < b ? -1 : 1)));
    const group = groups.get(key) ?? { buckets: [] };
    groups.set(key, group);
    if (s.name.endsWith('_bucket')) {
      if (le === undefined) throw new Error(`line ${s.line}: bucket of ${family.name} without le`);
      group.buckets.push(s);
    } else if (le !== undefined) throw new Error(`line ${s.line}: ${s.name} must not carry le`);
    else if (s.name.endsWith('_sum')) group.sum = s;
    else group.count = s;
  }
  for (const [key, g] of groups) {
    const where = `${family.name} ${key}`;
    if (g.sum === undefined || g.count === undefined) throw new Error(`${where}: _sum or _count missing`);
    const last = g.buckets[g.buckets.length - 1];
    if (last?.labels['le'] !== '+Inf') throw new Error(`${where}: the last bucket must be le="+Inf"`);
    if (last.value !== g.count.value) throw new Error(`line ${last.line}: +Inf bucket ≠ _count in ${where}`);
    let previous = { le: Number.NEGATIVE_INFINITY, value: 0 };
    for (const b of g.buckets) {
      const le = b.labels['le'] === '+Inf' ? Number.POSITIVE_INFINITY : Number(b.labels['le']);
      if (Number.isNaN(le) || !FLOAT.test(b.labels['le'] as string)) {
        throw new Error(`line ${b.line}: le ${JSON.stringify(b.labels['le'])} is not a number`);
      }
      if (le <= previous.le) throw new Error(`line ${b.line}: buckets of ${where} not in increasing le order`);
      if (b.value < previous.value) throw new Error(`line ${b.line}: buckets of ${where} are not cumulative`);
      previous = { le, value: b.value };
    }
  }
}
