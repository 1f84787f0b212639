// Types of scripts/check-deps.mjs for the TypeScript tests that import it.
export interface Specifier {
  readonly spec: string;
  readonly dynamic: boolean;
  readonly typeOnly: boolean;
}
export interface Import extends Specifier {
  readonly from: string;
  /** The imported file relative to the source root; null for a package or built-in; undefined when it names no file. */
  readonly to: string | null | undefined;
}
export interface Graph {
  readonly files: readonly string[];
  readonly imports: readonly Import[];
}
export interface Problem {
  readonly from: string;
  readonly spec: string;
  readonly rule: string;
}
export function specifiers(fileName: string, text: string): Specifier[];
export function scan(srcDir: string): Graph;
export function check(graph: Graph): Problem[];
export function cycles(nodes: readonly string[], edges: ReadonlyMap<string, ReadonlySet<string>>): string[][];
