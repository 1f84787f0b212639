// bench/drain.ts's subscriber: per gateway id, which sequence numbers of each device arrived (and how often).
import { telemetryHead } from './load.js';

export class Seqs {
  private counts = new Uint8Array(1024);
  /** Highest seq received */
  max = 0;
  /** Returns true the first time a seq arrives. */
  add(seq: number): boolean {
    if (seq >= this.counts.length) {
      let size = this.counts.length;
      while (size <= seq) size *= 2;
      const grown = new Uint8Array(size);
      grown.set(this.counts);
      this.counts = grown;
    }
    const before = this.counts[seq] ?? 0;
    if (before < 255) this.counts[seq] = before + 1;
    if (seq > this.max) this.max = seq;
    return before === 0;
  }

  has(seq: number): boolean {
    return (this.counts[seq] ?? 0) > 0;
  }

  /** Seqs in 1..upTo that never arrived. */
  missing(upTo: number): number[] {
    const out: number[] = [];
    for (let s = 1; s <= upTo; s++) if (!this.has(s)) out.push(s);
    return out;
  }
}

export interface Watch {
  seqs: Map<string, Seqs>;
  telemetry: number;
  other: number;
  duplicates: number;
  malformed: number;
  firstAt: number | undefined;
  onTelemetry?: (device: string, seq: number, ts: number, first: boolean, now: number) => void;
}

const watches = new Map<string, Watch>();

export function watch(gatewayId: string): Watch {
  const w: Watch = { seqs: new Map(), telemetry: 0, other: 0, duplicates: 0, malformed: 0, firstAt: undefined };
  watches.set(gatewayId, w);
  return w;
}

export function onMessage(topic: string, payload: Buffer): void {
  const now = Date.now();
  const parts = topic.split('/'); // guardian/<gatewayId>/<device>/telemetry | guardian/<gatewayId>/health | .../state
  const w = watches.get(parts[1] ?? '');
  if (w === undefined) return;
  if (parts.length !== 4 || parts[3] !== 'telemetry') {
    if (parts[2] !== 'state') w.other += 1;
    return;
  }
  w.firstAt ??= now;
  const device = parts[2] ?? '';
  const head = telemetryHead(payload);
  if (head === undefined) { w.malformed += 1; return; }
  const { seq } = head;
  let s = w.seqs.get(device);
  if (s === undefined) { s = new Seqs(); w.seqs.set(device, s); }
  const first = s.add(seq);
  w.telemetry += 1;
  if (!first) w.duplicates += 1;
  w.onTelemetry?.(device, seq, head.ts, first, now);
}
