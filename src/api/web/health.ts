// Why chunks are below target, in the words both `disktro status` and the
// dashboard's headline use: "replicating" only when something can copy them.
// (A pure module under web/ so the browser can load it too.)
export function whyBehind (daemonRunning: boolean, peerOnline: boolean): string {
  if (!daemonRunning) return 'not replicating (no daemon running)'
  if (!peerOnline) return 'waiting for a peer (none online)'
  return 'replicating'
}
