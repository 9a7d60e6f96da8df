// Runs inside the image: walks the module graph of each entry point given on the command line and
// reports every import or require that does not resolve, without starting anything. ES modules are
// parsed (vm.SourceTextModule, never evaluated) and their static imports and literal dynamic imports
// resolved as Node resolves them; CommonJS files are required for real, so their own requires (with
// the optional ones they catch) are exercised exactly as at run time.
//
//   node --experimental-vm-modules --experimental-import-meta-resolve --no-warnings resolve-graph.mjs FILE...
// Prints one JSON line: { modules, esm, cjs, problems: [{ from, specifier, error }] }; exits 1 on problems.
import { readFileSync, existsSync } from 'node:fs';
import { createRequire, isBuiltin } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import vm from 'node:vm';

const problems = [];
const seen = new Set();
const counts = { esm: 0, cjs: 0 };
const typeCache = new Map();

function packageType(dir) {
  if (typeCache.has(dir)) return typeCache.get(dir);
  let type = 'commonjs';
  const manifest = join(dir, 'package.json');
  if (existsSync(manifest)) {
    type = JSON.parse(readFileSync(manifest, 'utf8')).type ?? 'commonjs';
  } else if (dirname(dir) !== dir) {
    type = packageType(dirname(dir));
  }
  typeCache.set(dir, type);
  return type;
}

function formatOf(file) {
  if (file.endsWith('.json')) return 'json';
  if (file.endsWith('.node')) return 'addon';
  if (file.endsWith('.mjs')) return 'esm';
  if (file.endsWith('.cjs')) return 'cjs';
  return packageType(dirname(file)) === 'module' ? 'esm' : 'cjs';
}

function staticSpecifiers(file, source) {
  const module = new vm.SourceTextModule(source, { identifier: pathToFileURL(file).href });
  const specifiers = [...module.dependencySpecifiers];
  // Literal dynamic imports of the application's own code (lazy routes, CLI commands).
  if (!file.includes('/node_modules/')) {
    for (const match of source.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) specifiers.push(match[1]);
  }
  return specifiers;
}

function visit(file, from) {
  if (seen.has(file)) return;
  seen.add(file);
  const format = formatOf(file);
  if (format === 'json' || format === 'addon') return;
  if (format === 'cjs') {
    counts.cjs += 1;
    try {
      createRequire(file)(file);
    } catch (error) {
      problems.push({ from, specifier: file, error: `${error.code ?? error.name}: ${error.message.split('\n')[0]}` });
    }
    return;
  }
  counts.esm += 1;
  let specifiers;
  try {
    specifiers = staticSpecifiers(file, readFileSync(file, 'utf8'));
  } catch (error) {
    problems.push({ from, specifier: file, error: `${error.code ?? error.name}: ${error.message.split('\n')[0]}` });
    return;
  }
  for (const specifier of specifiers) {
    if (isBuiltin(specifier)) continue;
    let url;
    try {
      url = import.meta.resolve(specifier, pathToFileURL(file).href);
    } catch (error) {
      problems.push({ from: file, specifier, error: `${error.code ?? error.name}: ${error.message.split('\n')[0]}` });
      continue;
    }
    if (url.startsWith('node:')) continue;
    if (!url.startsWith('file:')) {
      problems.push({ from: file, specifier, error: `resolved to ${url}` });
      continue;
    }
    const target = fileURLToPath(url);
    if (!existsSync(target)) {
      problems.push({ from: file, specifier, error: `resolved to ${target}, which does not exist` });
      continue;
    }
    visit(target, file);
  }
}

for (const entry of process.argv.slice(2)) {
  const file = resolve(entry);
  if (!existsSync(file)) {
    problems.push({ from: '(command line)', specifier: entry, error: 'no such file' });
    continue;
  }
  visit(file, '(command line)');
}
process.stdout.write(`${JSON.stringify({ modules: seen.size, ...counts, problems })}\n`);
process.exitCode = problems.length > 0 ? 1 : 0;
