// The GraphQL-over-HTTP audit (graphql-http's serverAudits, the spec's reference audits)
// against a LIVE dossier API: this script migrates a fresh embedded database in a temporary
// folder, starts `python -m app serve` on a free loopback port, runs every audit, prints the
// table and exits 1 on any MUST (error) or SHOULD (warning) failure. MAY audits that fail
// are printed as notices and do not fail the run.
//
//   cd .ci/graphql-http && npm ci && node audit.mjs        (PYTHON: the venv's python)
//   node audit.mjs --url http://127.0.0.1:9000/graphql     (a server already running)
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serverAudits } from 'graphql-http';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const python = process.env.PYTHON || join(root, '.venv', 'bin', 'python');

function freePort() {
  return new Promise((ok, fail) => {
    const server = createServer();
    server.once('error', fail);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => ok(port));
    });
  });
}

function run(args, env) {
  return new Promise((ok, fail) => {
    const child = spawn(python, args, { cwd: root, env, stdio: ['ignore', 'inherit', 'inherit'] });
    child.once('error', fail);
    child.once('exit', (code) => (code === 0 ? ok() : fail(new Error(`${args.join(' ')}: exit ${code}`))));
  });
}

async function waitFor(url, server, seconds = 60) {
  const until = Date.now() + seconds * 1000;
  while (Date.now() < until) {
    if (server.exitCode !== null) throw new Error(`the server exited (${server.exitCode})`);
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${url} did not answer within ${seconds} s`);
}

async function liveServer() {
  const folder = mkdtempSync(join(tmpdir(), 'graphql-http-audit-'));
  const port = await freePort();
  const env = {
    ...process.env,
    ENV: 'development', // introspection on: the audits ask for __type
    DATABASE_URL: `sqlite://${join(folder, 'audit.sqlite3')}`,
    REDIS_URL: '',
    STORAGE_URL: `file://${join(folder, 'files')}`,
    HOST: '127.0.0.1',
    PORT: String(port),
  };
  await run(['-m', 'app', 'migrate'], env);
  const server = spawn(python, ['-m', 'app', 'serve', '--host', '127.0.0.1', '--port', String(port)], {
    cwd: root,
    env,
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitFor(`${base}/healthz`, server);
  } catch (error) {
    server.kill('SIGTERM');
    throw error;
  }
  return {
    url: `${base}/graphql`,
    async stop() {
      if (server.exitCode === null) {
        const exited = new Promise((r) => server.once('exit', r));
        server.kill('SIGTERM');
        await exited;
      }
      rmSync(folder, { recursive: true, force: true });
    },
  };
}

function level(name) {
  if (name.startsWith('MUST')) return 'MUST';
  if (name.startsWith('SHOULD')) return 'SHOULD';
  return 'MAY';
}

async function main() {
  const given = process.argv.indexOf('--url');
  const server = given > 0 ? { url: process.argv[given + 1], stop: async () => {} } : await liveServer();
  let failed = 0;
  try {
    const results = [];
    for (const { id, name, fn } of serverAudits({ url: server.url })) {
      const result = await fn();
      results.push({ id, name, result });
    }
    const rows = [];
    const counts = {};
    for (const { id, name, result } of results) {
      const key = `${level(name)} ${result.status}`;
      counts[key] = (counts[key] || 0) + 1;
      let detail = '';
      if (result.status !== 'ok') {
        const response = result.response;
        detail = `${result.reason}`;
        if (response) detail += ` (got ${response.status} ${response.headers.get('content-type') || ''})`;
        if (result.status !== 'notice') failed += 1;
      }
      rows.push({ id, level: level(name), status: result.status, audit: name, detail });
    }
    console.table(rows);
    console.log(
      Object.entries(counts)
        .sort()
        .map(([key, n]) => `${key}: ${n}`)
        .join(', '),
    );
    if (failed) console.error(`graphql-http audit: ${failed} MUST/SHOULD audit(s) failed on ${server.url}`);
    else console.log(`graphql-http audit: every MUST and SHOULD audit passes on ${server.url}`);
  } finally {
    await server.stop();
  }
  process.exit(failed ? 1 : 0);
}

main().catch((error) => {
  console.error(error);
  process.exit(2);
});
