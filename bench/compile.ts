/**
 * The benchmark's own child processes (fake upstream, baseline and floor relays) run as plain JavaScript, not
 * through tsx: tsx adds ~30 MiB of RSS and an esbuild helper process, which would distort the
 * baseline's RSS and CPU. Each file is transpiled alone (types erased, `.ts` imports rewritten) into
 * bench/.gateways/.build/, which is git-ignored and inside the repository so that bare imports
 * (fastify, undici) still resolve from node_modules.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import ts from 'typescript';

const FILES = ['fake-server.ts', 'baseline-relay.ts', 'floor-relay.ts', 'orphan-guard.ts', 'wire.ts'];

/** Transpiles the child scripts; returns the directory holding the `.js` files. */
export function compileChildScripts(benchDir: string): string {
  const outDir = join(benchDir, '.gateways', '.build');
  mkdirSync(outDir, { recursive: true });
  for (const file of FILES) {
    const source = readFileSync(join(benchDir, file), 'utf8');
    const { outputText } = ts.transpileModule(source, {
      fileName: file,
      compilerOptions: {
        module: ts.ModuleKind.ESNext,
        target: ts.ScriptTarget.ES2023,
        rewriteRelativeImportExtensions: true,
        verbatimModuleSyntax: true,
      },
    });
    writeFileSync(join(outDir, basename(file, '.ts') + '.js'), outputText);
  }
  return outDir;
}
