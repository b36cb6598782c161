// Reads gateway.yaml and connectors.d/ from disk and hands them to buildConfig.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { parse as parseYaml, parseDocument } from 'yaml';
import type { ConfigIssue } from './issues.js';
import type { Env, RouteSecret, SecretsMode } from './routes.js';
import { buildConfig, type BuildResult } from './validate.js';

export interface LoadOptions {
  /** Path to gateway.yaml. */
  configPath: string;
  /** Directory of connector files; default: connectors.d beside gateway.yaml. */
  connectorsDir?: string;
  /** Directory of send connector files; default: send-connectors.d beside gateway.yaml (may be absent). */
  sendConnectorsDir?: string | undefined;
  /** Environment for routes' auth.passEnv; default process.env. */
  env?: Env;
  /**
   * 'resolve' (default) or 'unresolved' (route passwords and the dashboard token not looked up,
   * a Redis password from passwordEnv/passwordFile taken only if there: see ConfigSources.secrets).
   */
  secrets?: SecretsMode;
}

export type LoadResult<S extends RouteSecret = string> = BuildResult<S> & { baseDir: string; dataDir?: string };

const CONNECTOR_EXT = /\.(ya?ml|json)$/i;

function display(p: string): string {
  const rel = path.relative(process.cwd(), p);
  return rel && !rel.startsWith('..') ? rel : p;
}

/** Parses one YAML/JSON file; syntax errors become issues with line and column. */
function readStructured(file: string, issues: ConfigIssue[]): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    issues.push({ file: display(file), path: '', message: `cannot read: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}` });
    return undefined;
  }
  if (/\.json$/i.test(file)) {
    try {
      return JSON.parse(text);
    } catch (e) {
      issues.push({ file: display(file), path: '', message: `not valid JSON: ${(e as Error).message}` });
      return undefined;
    }
  }
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    for (const err of doc.errors) {
      const pos = err.linePos?.[0];
      issues.push({ file: display(file), path: pos ? `line ${pos.line}, column ${pos.col}` : '', message: `not valid YAML: ${err.message.split('\n')[0]}` });
    }
    return undefined;
  }
  return doc.toJS();
}

/** Reads one YAML or JSON file (e.g. an explain scenario); errors as issues with line and column. */
export function readStructuredFile(file: string): { ok: true; data: unknown } | { ok: false; errors: ConfigIssue[] } {
  const issues: ConfigIssue[] = [];
  const data = readStructured(file, issues);
  return issues.length > 0 ? { ok: false, errors: issues } : { ok: true, data };
}

export function loadConfig(opts: LoadOptions & { secrets?: 'resolve' }): LoadResult;
export function loadConfig(opts: LoadOptions & { secrets: 'unresolved' }): LoadResult<RouteSecret>;
export function loadConfig(opts: LoadOptions): LoadResult<RouteSecret> {
  const configPath = path.resolve(opts.configPath);
  const baseDir = path.dirname(configPath);
  const connectorsDir = path.resolve(opts.connectorsDir ?? path.join(baseDir, 'connectors.d'));
  const readErrors: ConfigIssue[] = [];
  const gatewayFile = display(configPath);

  const gatewayData = existsSync(configPath) ? readStructured(configPath, readErrors) : undefined;
  if (!existsSync(configPath)) readErrors.push({ file: gatewayFile, path: '', message: `file not found (\`mailgw init ${display(baseDir)}\` writes a commented one, with connectors.d/, for your domain)` });

  const connectorFiles: Array<{ file: string; data: unknown }> = [];
  if (!existsSync(connectorsDir) || !statSync(connectorsDir).isDirectory()) {
    readErrors.push({ file: display(connectorsDir), path: '', message: 'connectors directory not found' });
  } else {
    for (const name of readdirSync(connectorsDir).sort()) {
      if (!CONNECTOR_EXT.test(name)) continue;
      const file = path.join(connectorsDir, name);
      const before = readErrors.length;
      const data = readStructured(file, readErrors);
      if (readErrors.length === before) connectorFiles.push({ file: display(file), data });
    }
  }

  // send-connectors.d/ is optional: without it, routes (or nothing) decide where mail leaves.
  const sendDir = path.resolve(opts.sendConnectorsDir ?? path.join(baseDir, 'send-connectors.d'));
  const sendConnectorFiles: Array<{ file: string; data: unknown }> = [];
  if (existsSync(sendDir) && statSync(sendDir).isDirectory()) {
    for (const name of readdirSync(sendDir).sort()) {
      if (!CONNECTOR_EXT.test(name)) continue;
      const file = path.join(sendDir, name);
      const before = readErrors.length;
      const data = readStructured(file, readErrors);
      if (readErrors.length === before) sendConnectorFiles.push({ file: display(file), data });
    }
  } else if (opts.sendConnectorsDir !== undefined) {
    readErrors.push({ file: display(sendDir), path: '', message: 'send connectors directory not found' });
  }

  const result = buildConfig({
    sendConnectorFiles,
    gatewayFile,
    gatewayData: gatewayData ?? {},
    connectorFiles,
    parseYaml: (t) => parseYaml(t),
    fallbackFqdn: hostname().toLowerCase(),
    baseDir,
    env: opts.env ?? process.env,
    secrets: opts.secrets ?? 'resolve',
    readReferenced: (rel) => {
      const file = path.resolve(baseDir, rel);
      try {
        return { ok: true, text: readFileSync(file, 'utf8'), file: display(file) };
      } catch (e) {
        return { ok: false, error: `cannot read ${display(file)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`, file: display(file) };
      }
    },
  });
  if (readErrors.length > 0) {
    // Without a readable gateway.yaml, "acceptedDomains: is required" and the like only repeat
    // that it is missing; the connector files' own errors are still worth reporting.
    const built = result.ok ? [] : result.errors.filter((e) => gatewayData !== undefined || e.file !== gatewayFile);
    const errors = [...readErrors, ...built];
    return { ok: false, errors, warnings: result.warnings, baseDir };
  }
  if (!result.ok) return { ...result, baseDir };
  return { ...result, baseDir, dataDir: path.resolve(baseDir, result.config.gateway.dataDir) };
}
