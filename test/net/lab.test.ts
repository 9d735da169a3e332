// disktro across the network lab (test/helpers/net-lab.ts): members in
// network namespaces of their own, on shaped, lossy links. Root only.
import t from 'tap'
import { NetLab, PROFILES, labAvailable, rawTcp } from '../helpers/net-lab.js'

const missing = labAvailable()
if (missing !== null) {
  if (process.env.CI) t.fail(missing)
  else t.plan(0, missing)
} else {
  t.test('the lab link: rate, delay and loss as configured; a cut partitions', async t => {
    const lab = await NetLab.start(t, [{ name: 'a' }, { name: 'b' }], PROFILES.broadband)
    const before = await lab.stats()
    const r = await rawTcp(lab, 'a', 'b', 16)
    const mbit = r.bytes * 8 / 1e6 / r.seconds
    t.equal(r.bytes, 16 * 1024 * 1024, 'every byte arrived')
    t.ok(mbit > 25 && mbit < 51, `a TCP stream over 50 Mbit/s, 40 ms RTT, 0.5% loss: ${mbit.toFixed(1)} Mbit/s`)
    const after = await lab.stats()
    const sent = after.get('a')!.sent - before.get('a')!.sent
    const lost = after.get('a')!.lost + after.get('b')!.lost - before.get('a')!.lost - before.get('b')!.lost
    t.ok(lost / (sent / 1500) > 0.001 && lost / (sent / 1500) < 0.02, `loss near 0.5% of packets (${lost} of about ${Math.round(sent / 1500)})`)
    // Latency: a 1-byte exchange costs a connect (1 RTT) plus a request (1 RTT): >= 80 ms.
    const t0 = performance.now()
    await rawTcp(lab, 'a', 'b', 0)
    t.ok(performance.now() - t0 > 80, 'a connect and an answer take two 40 ms round trips at least')

    await lab.cut(['a'], ['b'])
    const cut = rawTcp(lab, 'a', 'b', 1, 5202).then(() => 'through', () => 'failed')
    const raced = await Promise.race([cut, new Promise(resolve => setTimeout(() => resolve('blocked'), 3000))])
    t.equal(raced, 'blocked', 'nothing crosses a cut link')
    await lab.heal(['a'], ['b'])
    t.equal(await cut, 'through', 'the stream goes through once the link is healed (TCP retried)')
  })
}
