// Browser test of datakube's web portal (issue 7), run by tests/portal/run.sh from scripts/test.
//
// Real parts only: the release `datakube` binary on freshly generated demo data and a copy of
// cube-definitions/, the real OpenID provider of tests/oidc (npm oidc-provider) on loopback,
// Debian's Chromium driven by playwright-core, XMLA over HTTPS with node's https client, and
// expected numbers from hand-written SQL in DuckDB (@duckdb/node-api) over the same Parquet.
//
// Environment: DATAKUBE_BIN (the binary; required), PORTAL_ARTIFACTS (screenshots and
// downloads; default tests/portal/artifacts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { DuckDBInstance } from '@duckdb/node-api';

const here = path.dirname(fileURLToPath(import.meta.url));
const repo = path.resolve(here, '../..');
const bin = process.env.DATAKUBE_BIN;
const artifacts = process.env.PORTAL_ARTIFACTS || path.join(here, 'artifacts');
const CLIENT_SECRET = 'portal-test-client-secret-0123456789';
const AUDIENCE = 'urn:datakube';
const AARHUS = 751;

const children = [];
process.on('exit', () => { for (const c of children) { try { c.kill('SIGTERM'); } catch { /* gone */ } } });

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

/// Start a process; resolves with (child, the first output line matching `ready`) once seen.
function start(cmd, args, { env = {}, cwd = repo, ready, timeoutMs = 300_000, name }) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    const seen = [];
    let done = false;
    const timer = setTimeout(() => {
      if (!done) { done = true; reject(new Error(`${name} did not get ready:\n${seen.join('\n')}`)); }
    }, timeoutMs);
    const onLine = (line) => {
      seen.push(line);
      const m = line.match(ready);
      if (m && !done) { done = true; clearTimeout(timer); resolve({ child, match: m, log: seen }); }
    };
    for (const stream of [child.stdout, child.stderr]) {
      let buf = '';
      stream.on('data', (d) => {
        buf += d.toString();
        let i;
        while ((i = buf.indexOf('\n')) >= 0) { onLine(buf.slice(0, i)); buf = buf.slice(i + 1); }
      });
    }
    child.on('exit', (code) => {
      if (!done) { done = true; clearTimeout(timer); reject(new Error(`${name} exited with ${code}:\n${seen.join('\n')}`)); }
    });
  });
}

function copyDir(from, to) {
  fs.mkdirSync(to, { recursive: true });
  for (const e of fs.readdirSync(from, { withFileTypes: true })) {
    const a = path.join(from, e.name);
    const b = path.join(to, e.name);
    if (e.isDirectory()) copyDir(a, b); else fs.copyFileSync(a, b);
  }
}

/// POST an XMLA body with HTTP Basic (any user name, the token as password).
function xmla(base, token, body) {
  return new Promise((resolve, reject) => {
    const req = https.request(`${base}/xmla`, {
      method: 'POST',
      rejectUnauthorized: false, // the server's self-signed development certificate
      headers: {
        'Content-Type': 'text/xml; charset=utf-8',
        Authorization: 'Basic ' + Buffer.from(`excel:${token}`).toString('base64'),
      },
    }, (res) => {
      let s = '';
      res.setEncoding('utf8');
      res.on('data', (d) => { s += d; });
      res.on('end', () => resolve({ status: res.statusCode, body: s }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const esc = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const execute = (mdx) => `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
<Execute xmlns="urn:schemas-microsoft-com:xml-analysis"><Command><Statement>${esc(mdx)}</Statement></Command>
<Properties><PropertyList><Catalog>FLIS</Catalog><LocaleIdentifier>1030</LocaleIdentifier><Format>Multidimensional</Format></PropertyList></Properties>
</Execute></soap:Body></soap:Envelope>`;
const discoverCubes = `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>
<Discover xmlns="urn:schemas-microsoft-com:xml-analysis"><RequestType>MDSCHEMA_CUBES</RequestType><Restrictions/>
<Properties><PropertyList><Catalog>FLIS</Catalog></PropertyList></Properties></Discover></soap:Body></soap:Envelope>`;

/// The single cell's value of an MDDataSet answer.
function cellValue(body) {
  assert.ok(!body.includes('<soap:Fault') && !body.includes(':Fault>'), `XMLA fault: ${body.slice(0, 2000)}`);
  const m = body.match(/<Cell CellOrdinal="0">[\s\S]*?<Value[^>]*>([^<]*)<\/Value>/);
  assert.ok(m, `no cell 0 in: ${body.slice(0, 2000)}`);
  return Number(m[1]);
}

/// Hand-written SQL over the Parquet of the current snapshot.
async function duckdbNumber(dataDir, dataset, table, sqlTail) {
  const current = fs.readFileSync(path.join(dataDir, 'datasets', dataset, 'CURRENT'), 'utf8').trim();
  const glob = path.join(dataDir, 'datasets', dataset, 'snapshots', current, table, '**', '*.parquet');
  const db = await DuckDBInstance.create(':memory:');
  const con = await db.connect();
  const r = await con.runAndReadAll(`SELECT ${sqlTail.select} FROM read_parquet('${glob.replace(/'/g, "''")}', hive_partitioning = true) WHERE ${sqlTail.where}`);
  return Number(r.getRows()[0][0]);
}

async function shot(page, name) {
  await page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
}

/// Log in through the identity provider's own login and consent forms.
async function oidcLogin(page, base, account) {
  await page.goto(`${base}/login`);
  for (let i = 0; i < 4 && !page.url().startsWith(base); i++) {
    if (await page.locator('input[name="login"]').count()) {
      if (i === 0 && account === 'anna') await shot(page, '00-idp-login');
      await page.fill('input[name="login"]', account);
      await page.fill('input[name="password"]', 'irrelevant');
    }
    await Promise.all([page.waitForNavigation(), page.click('button[type="submit"]')]);
  }
  assert.equal(new URL(page.url()).pathname, '/tokens', `the login ends on the token page, not ${page.url()}`);
}

const launchArgs = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'];

test('portal in Chromium: OIDC login, token, catalogue da/en, connection files, admin reload with a broken YAML', { timeout: 900_000 }, async (t) => {
  assert.ok(bin && fs.existsSync(bin), `DATAKUBE_BIN must name the datakube binary (got ${bin})`);
  fs.mkdirSync(artifacts, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'datakube-portal-'));
  const defs = path.join(tmp, 'defs');
  copyDir(path.join(repo, 'cube-definitions'), defs);
  const dataDir = path.join(tmp, 'data');
  const port = await freePort();
  const base = `https://localhost:${port}`;

  let idp; let dk; let browser;
  t.after(async () => {
    if (browser) await browser.close();
    for (const c of [dk, idp]) {
      if (c && c.child.exitCode === null) {
        const gone = new Promise((resolve) => c.child.once('exit', resolve));
        c.child.kill('SIGTERM');
        await gone;
      }
    }
    fs.rmSync(tmp, { recursive: true, force: true });
  });
  idp = await start('node', ['idp.js'], {
    cwd: path.join(repo, 'tests/oidc'),
    env: { PORT: '0', KEYS_FILE: path.join(tmp, 'idp-keys.json'), REDIRECT_URI: `${base}/callback`, CLIENT_SECRET, AUDIENCE },
    ready: /listening (http:\/\/\S+)/, name: 'the OpenID provider', timeoutMs: 60_000,
  });
  const issuer = idp.match[1];
  dk = await start(bin, ['--data-dir', dataDir, '--cube-definitions', defs, 'serve', '--listen', `127.0.0.1:${port}`,
    '--demo-scale', '0.002', '--oidc-issuer', issuer, '--oidc-client-id', 'datakube', '--oidc-audience', AUDIENCE,
    '--oidc-scopes', '', '--public-url', base], {
    env: { DATAKUBE_OIDC_CLIENT_SECRET: CLIENT_SECRET }, ready: new RegExp(`https://localhost:${port}/xmla`), name: 'datakube',
  });

  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: launchArgs });
  const anna = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true, viewport: { width: 1280, height: 900 } });
  const page = await anna.newPage();
  let token;

  await t.test('log in through the OpenID provider and create a token', async () => {
    await oidcLogin(page, base, 'anna');
    assert.match(await page.textContent('header'), /Anna Analytiker/);
    await page.fill('input[name="name"]', 'Excel på min pc');
    await Promise.all([page.waitForNavigation(), page.click('form[action="/tokens"] button[type="submit"]')]);
    token = (await page.textContent('#new-token')).trim();
    assert.match(token, /^dkpat_[A-Za-z0-9_-]{43}$/);
    await shot(page, '01-token-created');
    // Listed, and never shown again.
    await page.goto(`${base}/tokens`);
    assert.match(await page.textContent('table'), /Excel på min pc/);
    assert.ok(!(await page.content()).includes(token));
  });

  let before;
  await t.test('the token works for XMLA with HTTP Basic; the number matches DuckDB', async () => {
    const cubes = await xmla(base, token, discoverCubes);
    assert.equal(cubes.status, 200);
    assert.match(cubes.body, /<CUBE_NAME>Befolkning<\/CUBE_NAME>/);
    const wrong = await xmla(base, token.slice(0, -1) + (token.endsWith('A') ? 'B' : 'A'), discoverCubes);
    assert.equal(wrong.status, 401, 'a changed token is refused');
    const r = await xmla(base, token, execute('SELECT [Measures].[Tilflyttede] ON 0 FROM [Befolkning]'));
    assert.equal(r.status, 200);
    before = cellValue(r.body);
    const expected = await duckdbNumber(dataDir, 'befolkning', 'bestand', { select: 'sum(tilflyttede)', where: `kommunekode = ${AARHUS}` });
    assert.ok(expected > 0, 'the demo data has moves into Aarhus');
    assert.equal(before, expected, 'Tilflyttede for Aarhus (the analyst’s row scope) equals the SQL over the Parquet');
  });

  await t.test('the catalogue in Danish and English', async () => {
    await page.goto(`${base}/`);
    assert.equal(await page.getAttribute('html', 'lang'), 'da');
    assert.match(await page.textContent('h1'), /Kubekatalog/);
    const da = await page.$$eval('article.cube h2', (hs) => hs.map((h) => h.textContent.trim()));
    assert.deepEqual(da, ['Befolkning', 'Benchmark', 'Beskæftigelse', 'Økonomi', 'Personale', 'Skole']);
    assert.match(await page.textContent('main .lead'), /Aarhus/);
    await shot(page, '02-catalogue-da');
    await Promise.all([page.waitForNavigation(), page.click('header .lang a[lang="en"]')]);
    assert.equal(await page.getAttribute('html', 'lang'), 'en');
    assert.match(await page.textContent('h1'), /Cube catalogue/);
    const en = await page.$$eval('article.cube h2', (hs) => hs.map((h) => h.textContent.trim()));
    assert.deepEqual(en, ['Population', 'Benchmark', 'Employment', 'Finance', 'Staff', 'School']);
    await shot(page, '03-catalogue-en');
    // The choice is remembered on the next page.
    await page.goto(`${base}/cubes/Befolkning`);
    assert.match(await page.textContent('main'), /Data quality/);
    await shot(page, '04-cube-en');
    await page.goto(`${base}/cubes/Befolkning?lang=da`);
    assert.match(await page.textContent('main'), /Datakvalitet/);
    assert.match(await page.textContent('.quality'), /Aarhus/);
    await shot(page, '05-cube-da');
    // On a phone.
    const phone = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    await phone.addCookies(await anna.cookies());
    const p2 = await phone.newPage();
    await p2.goto(`${base}/`);
    const overflow = await p2.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 1, `the catalogue fits a phone's width (overflow ${overflow}px)`);
    await shot(p2, '06-catalogue-phone');
    await phone.close();
  });

  await t.test('download the .odc and .pbids files and check their content', async () => {
    await page.goto(`${base}/cubes/Befolkning`);
    const [odc] = await Promise.all([page.waitForEvent('download'), page.click('#download-odc')]);
    assert.equal(odc.suggestedFilename(), 'FLIS-Befolkning.odc');
    const odcPath = path.join(artifacts, 'FLIS-Befolkning.odc');
    await odc.saveAs(odcPath);
    const text = fs.readFileSync(odcPath, 'utf8');
    assert.match(text, /<meta name=ProgId content=ODC\.Cube>/);
    const conn = text.match(/<odc:ConnectionString>([^<]*)<\/odc:ConnectionString>/)[1];
    assert.ok(conn.includes(`Data Source=${base}/xmla;`), conn);
    assert.ok(conn.includes('Initial Catalog=FLIS;') && conn.includes('Locale Identifier=1030'), conn);
    assert.match(text, /<odc:CommandText>Befolkning<\/odc:CommandText>/);
    assert.equal(conn, (await page.textContent('#connection-string')).trim(), 'the page shows the same connection string');
    const [pbids] = await Promise.all([page.waitForEvent('download'), page.click('#download-pbids')]);
    assert.equal(pbids.suggestedFilename(), 'FLIS-Befolkning.pbids');
    const pbidsPath = path.join(artifacts, 'FLIS-Befolkning.pbids');
    await pbids.saveAs(pbidsPath);
    const v = JSON.parse(fs.readFileSync(pbidsPath, 'utf8'));
    assert.equal(v.connections[0].details.protocol, 'analysis-services');
    assert.equal(v.connections[0].details.address.server, `${base}/xmla`);
    assert.equal(v.connections[0].details.address.database, 'FLIS');
    // The copy button puts the connection string on the clipboard.
    await anna.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: base });
    await page.click('button.copy[data-copy="connection-string"]');
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), conn);
  });

  await t.test('an analyst gets 403 on the administration pages', async () => {
    const r = await page.goto(`${base}/admin`);
    assert.equal(r.status(), 403);
  });

  await t.test('an administrator sees a broken YAML on /admin after reload; the old cube keeps answering', async () => {
    const admin = await browser.newContext({ ignoreHTTPSErrors: true, acceptDownloads: true, viewport: { width: 1280, height: 900 } });
    const ap = await admin.newPage();
    await oidcLogin(ap, base, 'ida');
    await ap.goto(`${base}/admin`);
    assert.equal((await ap.textContent('#definitions-state')).trim(), 'indlæst');
    assert.match(await ap.textContent('#loaded-cubes'), /Befolkning/);
    await shot(ap, '07-admin-ok');
    // Break the Befolkning definition: a measure names a column that does not exist.
    const file = path.join(defs, 'befolkning.yaml');
    const yaml = fs.readFileSync(file, 'utf8');
    assert.ok(yaml.includes('column: tilflyttede\n'));
    fs.writeFileSync(file, yaml.replace('column: tilflyttede\n', 'column: tilflyttede_typo\n'));
    const line = yaml.slice(0, yaml.indexOf('column: tilflyttede\n')).split('\n').length;
    await Promise.all([ap.waitForNavigation(), ap.click('#reload')]);
    assert.equal((await ap.textContent('#definitions-state')).trim(), 'fejl');
    const errors = await ap.textContent('#definition-errors');
    assert.ok(errors.includes(`befolkning.yaml:${line}:`), `the error names file:line (${line}): ${errors}`);
    assert.match(errors, /tilflyttede_typo/);
    await shot(ap, '08-admin-validation-error');
    // Meanwhile the running cube answers as before, with the DuckDB number.
    const r = await xmla(base, token, execute('SELECT [Measures].[Tilflyttede] ON 0 FROM [Befolkning]'));
    assert.equal(cellValue(r.body), before);
    const expected = await duckdbNumber(dataDir, 'befolkning', 'bestand', { select: 'sum(tilflyttede)', where: `kommunekode = ${AARHUS}` });
    assert.equal(cellValue(r.body), expected);

    // The audit log: filtered to anna, exported as CSV.
    await ap.goto(`${base}/admin/audit?user=anna`);
    const rows = await ap.$$eval('table.audit tbody tr', (trs) => trs.map((tr) => tr.textContent));
    assert.ok(rows.length > 0 && rows.every((r) => r.includes('anna')), 'only anna\'s lines');
    assert.ok(rows.some((r) => r.includes('token_created')) && rows.some((r) => r.includes('query')));
    await ap.selectOption('select[name="kind"]', 'query');
    await Promise.all([ap.waitForNavigation(), ap.click('#audit-filter button[type="submit"]')]);
    await shot(ap, '09-audit');
    const [csv] = await Promise.all([ap.waitForEvent('download'), ap.click('#audit-csv')]);
    const csvPath = path.join(artifacts, 'audit.csv');
    await csv.saveAs(csvPath);
    const lines = fs.readFileSync(csvPath, 'utf8').trim().split('\r\n');
    assert.ok(lines[0].startsWith('time,kind,user,'));
    assert.ok(lines.length >= 3, `header and at least the two queries: ${lines.length}`);
    assert.ok(lines.slice(1).every((l) => l.split(',')[1] === 'query' && l.split(',')[2] === 'anna'), lines.join('\n'));
    await admin.close();
  });
});

test('portal with the development identity: login form and catalogue', { timeout: 600_000 }, async () => {
  assert.ok(bin && fs.existsSync(bin));
  fs.mkdirSync(artifacts, { recursive: true });
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'datakube-portal-dev-'));
  const server = await start(bin, ['--data-dir', path.join(tmp, 'data'), '--cube-definitions', path.join(repo, 'cube-definitions'),
    'serve', '--listen', '127.0.0.1:0', '--demo-scale', '0.002'], { ready: /https:\/\/localhost:(\d+)\/xmla/, name: 'datakube (development identity)' });
  const base = `https://localhost:${server.match[1]}`;
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: launchArgs });
  try {
    const page = await (await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 1280, height: 900 } })).newPage();
    await page.goto(`${base}/login`);
    assert.match(await page.textContent('main'), /Udviklingsidentitet/);
    await shot(page, '10-dev-login');
    await page.fill('input[name="user"]', 'laesoe');
    await page.fill('input[name="password"]', 'wrong');
    await Promise.all([page.waitForNavigation(), page.click('main button[type="submit"]')]);
    assert.match(await page.textContent('main'), /Ukendt bruger eller forkert adgangskode/);
    await page.fill('input[name="user"]', 'laesoe');
    await page.fill('input[name="password"]', 'laesoe');
    await Promise.all([page.waitForNavigation(), page.click('main button[type="submit"]')]);
    assert.equal(new URL(page.url()).pathname, '/tokens');
    await page.goto(`${base}/`);
    assert.match(await page.textContent('main .lead'), /Læsø/);
    assert.equal(await page.locator('article.cube').count(), 6);
    assert.equal(await page.locator('header a[href="/admin"]').count(), 0, 'no administration link for an analyst');
  } finally {
    await browser.close();
    const gone = new Promise((resolve) => server.child.once('exit', resolve));
    server.child.kill('SIGTERM');
    await gone;
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
