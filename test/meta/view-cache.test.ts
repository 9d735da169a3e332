// The merged view's bounded cache (#26): the least recently used go first,
// weights count, and what was just set stays even when it alone is over.
import t from 'tap'
import { ViewCache } from '../../src/meta/merge/view-cache.js'

t.test('least recently used out, by weight', async t => {
  let limit = 3
  const c = new ViewCache<string>(() => limit)
  c.set('a', 'A')
  c.set('b', 'B')
  c.set('c', 'C')
  t.equal(c.get('a'), 'A', 'a read makes a the most recent')
  c.set('d', 'D')
  t.equal(c.get('b'), undefined, 'so b went')
  t.same([c.get('a'), c.get('c'), c.get('d')], ['A', 'C', 'D'])
  c.set('big', 'BIG', 10)
  t.equal(c.size, 1, 'a value over the limit pushes out everything else')
  t.equal(c.get('big'), 'BIG', 'and stays until the next set')
  c.set('e', 'E')
  t.equal(c.get('big'), undefined)
  t.equal(c.weight, 1)
  t.equal(c.delete('e'), 'E', 'delete gives back what it held')
  t.equal(c.weight, 0)
  limit = 1
  c.set('x', 'X')
  c.set('y', 'Y')
  t.same([c.get('x'), c.get('y')], [undefined, 'Y'], 'the bound is read at each set')
})
