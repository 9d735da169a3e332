import t from 'tap'
import { randomBytes } from 'node:crypto'
import { access, mkdir, readFile, writeFile } from 'node:fs/promises'
import { createServer, request } from 'node:http'
import { join } from 'node:path'
import { chromium, type Page } from 'playwright-core'
import { requireFuse, sh, disktro, tempDir, ROOT } from '../helpers/disktro.js'
import { startBootstrap, makeCluster, mountNode, serveNode, statusJson, until } from '../helpers/cluster.js'

const CHROMIUM = {
  executablePath: '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-background-networking', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-component-update', '--disable-sync']
}
const OUT = join(ROOT, 'test-output')

interface Web { url: string, origin: string, token: string }

// Like FUSE: under CI a missing browser fails the test (.ci/run installs it).
async function requireChromium (t: { fail (msg: string): unknown, comment (msg: string): unknown }): Promise<boolean> {
  try {
    await access(CHROMIUM.executablePath)
    return true
  } catch {
    if (process.env.CI) t.fail(`${CHROMIUM.executablePath} is missing: install Debian's chromium`)
    else t.comment(`skipped: ${CHROMIUM.executablePath} is missing (apt-get install chromium)`)
    return false
  }
}

// The dashboard of a mounted full member, driven in headless Chromium, with a
// second full member and a storage-only member serving beside it.
t.test('the dashboard in a real browser: upload, download, pin, peers going offline, refusals', async t => {
  if (!await requireFuse(t) || !await requireChromium(t)) return
  const started = Date.now()
  const launching = chromium.launch(CHROMIUM)
  t.teardown(async () => { await (await launching.catch(() => null))?.close() })
  await mkdir(OUT, { recursive: true })

  const bootstrap = await startBootstrap(t)
  const [a, b, c] = await makeCluster(t, bootstrap, ['full', 'full', 'storage'], { replicaCount: 2, port: 0 })
  // One after another, as in cluster.test.ts: a node stops looking for more
  // peers once it has one, so three started at once can pair off and leave
  // one pair apart (their first DHT lookups crossed).
  const ma = await mountNode(t, a)
  const sb = await serveNode(t, b)
  await serveNode(t, c)
  const webCmd = await disktro(['web', '--json', '--data-dir', a.dataDir])
  t.equal(webCmd.code, 0, 'disktro web answers')
  const web = JSON.parse(webCmd.stdout) as Web
  t.match(web.url, /^http:\/\/127\.0\.0\.1:\d+\/#token=/)
  const browser = await launching
  const context = await browser.newContext({ acceptDownloads: true, viewport: { width: 1280, height: 760 } })
  const page = await context.newPage()
  const pageErrors: string[] = []
  page.on('pageerror', e => pageErrors.push(e.message))
  t.comment(`cluster and browser up after ${Date.now() - started} ms`)

  await page.goto(web.url)
  t.notMatch(page.url(), /token=/, 'the token left the address bar')
  await page.waitForSelector('#view-files:not([hidden])')
  t.match(await page.textContent('#whoami'), /full member/)

  // A new folder, then an upload into it; the bytes must show up in the mount.
  page.once('dialog', d => { void d.accept('inbox') })
  await page.click('#new-folder')
  await page.click('tr[data-path="/inbox"] a')
  await page.waitForSelector('#crumbs a:has-text("inbox")')
  const local = await tempDir(t)
  const upData = randomBytes(6 * 1024 * 1024 + 4321)
  await writeFile(join(local, 'photo 1.bin'), upData)
  // Throttled to about 4 MiB/s, so the upload lasts long enough to show progress.
  const cdp = await context.newCDPSession(page)
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: 4 * 1024 * 1024 })
  await page.setInputFiles('#upload-input', join(local, 'photo 1.bin'))
  const progress = await page.waitForFunction(() => {
    const m = /^(\d+)%$/.exec(document.querySelector('#transfers .transfer .what span:last-child')?.textContent ?? '')
    return m !== null && Number(m[1]) > 0 && Number(m[1]) < 100 && Number(m[1])
  })
  t.ok(await progress.jsonValue(), `the page shows the upload's progress (${String(await progress.jsonValue())}%)`)
  await page.screenshot({ path: join(OUT, 'dashboard-upload.png') })
  await page.waitForSelector('tr[data-path="/inbox/photo 1.bin"]')
  await cdp.send('Network.emulateNetworkConditions', { offline: false, latency: 0, downloadThroughput: -1, uploadThroughput: -1 })
  await page.waitForSelector('#transfers .transfer:has-text("done")')
  t.ok((await readFile(ma.path('inbox', 'photo 1.bin'))).equals(upData), 'uploaded through the page: byte-identical in the FUSE mount')

  // Written through the mount, downloaded through the page.
  const downData = randomBytes(3 * 1024 * 1024 + 17)
  await writeFile(join(local, 'from-mount.bin'), downData)
  await sh(`cp '${join(local, 'from-mount.bin')}' '${ma.path('inbox', 'from-mount.bin')}'`)
  await page.reload()
  const row = 'tr[data-path="/inbox/from-mount.bin"]'
  await page.waitForSelector(row)
  const [download] = await Promise.all([page.waitForEvent('download'), page.click(`${row} a.download`)])
  t.equal(download.suggestedFilename(), 'from-mount.bin')
  t.ok((await readFile(await download.path())).equals(downData), 'written through the mount: byte-identical downloaded through the page')

  // A name that is markup, from the mount (as another member could make it): shown as text.
  const evilName = '<img src=x onerror="document.body.dataset.xss=1">.txt'
  await writeFile(ma.path('inbox', evilName), 'x')
  await page.reload()
  await page.waitForFunction(n => [...document.querySelectorAll('#file-rows tr')].some(r => r.getAttribute('data-path') === '/inbox/' + n), evilName)
  t.same(await page.evaluate(n => ({
    imgs: document.querySelectorAll('#file-rows img').length,
    xss: document.body.dataset.xss ?? null,
    shown: [...document.querySelectorAll('#file-rows td.name')].some(td => td.textContent?.includes(n))
  }), evilName), { imgs: 0, xss: null, shown: true }, 'a file name that is markup is shown as text, never run')

  // Pin the upload to the storage-only member: it must end up with every chunk.
  const peers = await until('both peers online', async () => {
    const s = await statusJson(a)
    return s.peers.filter((p: any) => p.online).length === 2 && s.peers
  }, 60_000) // as in cluster.test.ts: discovery on a loaded machine can take a while
  t.comment(`both peers online ${Date.now() - started} ms after the start`)
  const bId = peers.find((p: any) => p.role === 'full').id as string
  const cId = peers.find((p: any) => p.role === 'storage').id as string
  const upRow = 'tr[data-path="/inbox/photo 1.bin"]'
  await page.waitForSelector(`${upRow} select.pin-select option[value="${cId}"]`, { state: 'attached' })
  await page.selectOption(`${upRow} select.pin-select`, cId)
  await page.waitForSelector(`${upRow} [data-pin="${cId}"]`)
  const pin = await until('the pinned peer holds every chunk', async () => {
    const p = (await statusJson(a)).pins.find((x: any) => x.path === '/inbox/photo 1.bin')
    return p && p.chunks === 7 && p.held === 7 && p
  }, 20_000)
  t.match(pin, { peer: cId, peerOnline: true }, 'status --json: pinned to the storage-only member, all 7 chunks held')
  const statusText = await disktro(['status', '--data-dir', a.dataDir, '--config', a.config])
  t.match(statusText.stdout, new RegExp(`/inbox/photo 1\\.bin\\s+-> ${cId.slice(0, 16)} online\\s+complete`), 'disktro status shows the pin')
  await page.waitForSelector(`${upRow} .replication[data-at-target="7"]`, { timeout: 15_000 })
  await page.screenshot({ path: join(OUT, 'dashboard-files.png') })

  await page.click('#tab-volume')
  await page.waitForSelector(`tr[data-pin-path="/inbox/photo 1.bin"][data-pin-peer="${cId}"] .replication[data-at-target="7"]`)
  t.match(await page.textContent('[data-stat="logical"] .v'), /9\.\d MiB/, 'Volume view: logical bytes')
  await page.screenshot({ path: join(OUT, 'dashboard-volume.png') })

  // "Upload to a specific peer": the upload is pinned to b as it lands.
  await page.click('#tab-files')
  await page.waitForSelector(upRow) // the tab leads back to /inbox
  await page.selectOption('#upload-pin', bId)
  await writeFile(join(local, 'for-b.txt'), 'kept on b\n')
  await page.setInputFiles('#upload-input', join(local, 'for-b.txt'))
  await page.waitForSelector(`tr[data-path="/inbox/for-b.txt"] [data-pin="${bId}"]`)
  await until('b holds the file uploaded to it', async () => (await statusJson(a)).pins.some((p: any) => p.path === '/inbox/for-b.txt' && p.peer === bId && p.chunks === 1 && p.held === 1), 15_000)
  t.pass('uploaded to a chosen peer: pinned there and held')

  // Peers, live: stop one and watch it go offline.
  await page.click('#tab-peers')
  await page.waitForSelector(`tr[data-peer="${bId}"][data-online="true"]`)
  await page.waitForSelector(`tr[data-peer="${cId}"][data-online="true"]`)
  await sb.stop()
  const stoppedAt = Date.now()
  await page.waitForSelector(`tr[data-peer="${bId}"][data-online="false"]`, { timeout: 10_000 })
  t.pass(`the stopped peer shows offline on the Peers view after ${Date.now() - stoppedAt} ms, without a reload`)
  t.equal(await page.getAttribute(`tr[data-peer="${cId}"]`, 'data-online'), 'true', 'the other stays online')
  await page.screenshot({ path: join(OUT, 'dashboard-peers.png') })

  // Refusals against the real daemon: no token, a foreign Host, a cross-site POST.
  const origin = new URL(web.origin)
  const get = (headers: Record<string, string>) => new Promise<number>((resolve, reject) => {
    request({ host: origin.hostname, port: origin.port, path: '/api/files?path=/', headers }, res => { res.resume(); resolve(res.statusCode ?? 0) }).on('error', reject).end()
  })
  t.equal(await get({}), 401, 'no token: 401')
  t.equal(await get({ Authorization: `Bearer ${web.token}`, Host: `rebind.example:${origin.port}` }), 403, 'a foreign Host: 403, token or not')
  t.equal(await get({ Authorization: `Bearer ${web.token}` }), 200, 'with the token: 200')

  // Another origin on the same machine (same site: under the old cookie the
  // browser sent the token to it) posts a form to the dashboard: refused, and
  // nothing this browser sends it carries the token.
  const seen: string[] = []
  const evil = createServer((req, res) => {
    seen.push(JSON.stringify(req.headers))
    res.writeHead(200, { 'Content-Type': 'text/html' })
    res.end(`<form method="POST" action="${web.origin}/api/mkdir?path=/pwned"></form><script>fetch('/probe', { credentials: 'include' }).finally(() => document.forms[0].submit())</script>`)
  })
  await new Promise<void>(resolve => evil.listen(0, '127.0.0.1', () => resolve()))
  t.teardown(() => new Promise<void>(resolve => evil.close(() => resolve())))
  const [refused] = await Promise.all([
    page.waitForResponse(r => r.url().includes('/api/mkdir')),
    page.goto(`http://127.0.0.1:${(evil.address() as { port: number }).port}/`)
  ])
  // The browser holds no cookie for the dashboard: the form arrives with no
  // credential at all (with the token it would still be refused as
  // cross-site: test/api/web-api.test.ts).
  t.equal(refused.status(), 401, 'a cross-site POST from a real browser carries nothing: 401')
  t.match(await refused.text(), /access needs the token/)
  await t.rejects(access(ma.path('pwned')), 'and nothing was created')
  t.ok(seen.length >= 2, `the other server got the page's requests (${seen.length})`)
  t.notOk(seen.some(h => h.includes(web.token)), 'none of them carries the dashboard\'s token')
  t.notOk(seen.some(h => /disktro/.test(h)), 'nor any cookie of the dashboard\'s')
  // Back on the dashboard (a new visit, in the same tab): sessionStorage still holds the token.
  await page.goto(web.origin + '/#/volume')
  await page.waitForSelector('#view-volume:not([hidden])')
  await page.waitForSelector('[data-stat="logical"] .v')
  t.pass('the tab keeps its access without the token in the URL')

  t.same(pageErrors, [], 'no script errors on the page')
  t.comment(`dashboard test body took ${Date.now() - started} ms`)
})

// The headline follows `disktro status`: a node alone is not "replicating".
t.test('the headline of a lone node says it is at risk and why, and changes once a peer comes', async t => {
  if (!await requireFuse(t) || !await requireChromium(t)) return
  const launching = chromium.launch(CHROMIUM)
  t.teardown(async () => { await (await launching.catch(() => null))?.close() })
  const bootstrap = await startBootstrap(t)
  const [a, b] = await makeCluster(t, bootstrap, ['full', 'full'], { replicaCount: 2, port: 0 })
  const ma = await mountNode(t, a)
  await writeFile(ma.path('alone.bin'), randomBytes(3 * 1024 * 1024))
  const web = JSON.parse((await disktro(['web', '--json', '--data-dir', a.dataDir])).stdout) as Web
  const page = await (await launching).newPage()
  await page.goto(web.url)
  const health = async (re: RegExp, timeout: number): Promise<string> => {
    await page.waitForFunction(src => new RegExp(src).test(document.querySelector('#health')?.textContent ?? ''), re.source, { timeout })
    return (await page.textContent('#health')) ?? ''
  }
  t.match(await health(/^at risk: 3 of 3 chunks below 2 copies: this volume has 1 machine known and replicaCount is 2/, 15_000), /at risk/, 'alone: at risk, and why')
  await serveNode(t, b)
  t.match(await health(/^safe: every chunk on 2 machines$/, 30_000), /safe/, 'a peer came: safe once its copies are counted')
})
