// Numbers for people.
export function bytes (n: number | null | undefined): string {
  if (n === null || n === undefined) return '–'
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++ }
  return `${i === 0 ? n : n.toFixed(n >= 100 ? 0 : 1)} ${units[i]}`
}

export function rate (n: number): string {
  return `${bytes(n)}/s`
}

export function ago (t: number | null | undefined, now = Date.now()): string {
  if (!t) return 'never'
  const s = Math.max(0, Math.round((now - t) / 1000))
  if (s < 2) return 'just now'
  if (s < 90) return `${s} s ago`
  if (s < 5400) return `${Math.round(s / 60)} min ago`
  if (s < 129600) return `${Math.round(s / 3600)} h ago`
  return `${Math.round(s / 86400)} d ago`
}

export function shortId (id: string): string {
  return id.slice(0, 12)
}

export function ratio (x: number): string {
  return `${x.toFixed(2)}×`
}

export function when (t: number): string {
  return new Date(t).toLocaleString()
}
