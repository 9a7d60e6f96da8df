import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';

export interface SourceDocument {
  /** Where it came from, for messages: `file.yaml` or `file.yaml (document 2)`. */
  where: string;
  value: unknown;
}

export interface ReadResult {
  documents: SourceDocument[];
  /** Files that could not be read or parsed, one readable line each. */
  errors: string[];
}

const MANIFEST = /\.(ya?ml|json)$/i;

/** A file, or every .yaml/.yml/.json file directly in a directory (sorted); multi-document YAML is fine. */
export function readManifests(paths: string[]): ReadResult {
  const result: ReadResult = { documents: [], errors: [] };
  for (const path of paths) {
    let files: string[];
    try {
      files = statSync(path).isDirectory()
        ? readdirSync(path)
            .filter((name) => MANIFEST.test(name))
            .sort()
            .map((name) => join(path, name))
        : [path];
    } catch (error) {
      result.errors.push(`${path}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (error as Error).message}`);
      continue;
    }
    if (files.length === 0) result.errors.push(`${path}: no .yaml, .yml or .json files in this directory`);
    for (const file of files) readFile(file, result);
  }
  return result;
}

function readFile(file: string, result: ReadResult): void {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    result.errors.push(`${file}: ${(error as Error).message}`);
    return;
  }
  const documents = parseAllDocuments(text);
  const list = Array.isArray(documents) ? documents : [documents];
  const many = list.length > 1;
  list.forEach((document, index) => {
    const where = many ? `${file} (document ${index + 1})` : file;
    if (document.errors.length) {
      for (const error of document.errors) {
        const line = error.linePos?.[0];
        result.errors.push(`${where}: YAML error${line ? ` at line ${line.line}, column ${line.col}` : ''}: ${error.message.split('\n')[0]!.replace(/:$/, '')}`);
      }
      return;
    }
    const value: unknown = document.toJS();
    if (value === null || value === undefined) return; // an empty document, such as a trailing ---
    result.documents.push({ where, value });
  });
}
