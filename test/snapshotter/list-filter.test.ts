// containerd's List filters as far as list-filter.ts understands them, and "match all" for
// everything else (containerd filters again; dropping a snapshot it asked for is the only
// way to be wrong).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { listFilter, type Filterable } from '../../src/snapshotter/list-filter.js';

const SNAPS: Filterable[] = [
  { name: 'sha256:c1', parent: '', kind: 3, labels: { 'containerd.io/snapshot.ref': 'sha256:c1', 'containerd.io/snapshot/remote': 'remote snapshot' } },
  { name: 'default/4/sha256:c2', parent: 'sha256:c1', kind: 3, labels: { 'containerd.io/snapshot.ref': 'sha256:c2' } },
  { name: 'default/5/ctr', parent: 'default/4/sha256:c2', kind: 2, labels: {} },
  { name: 'view one', parent: 'sha256:c1', kind: 1, labels: { 'a.b': 'x y', q: 'say "hi"' } },
];
const ALL = SNAPS.map((s) => s.name);

const cases: Array<[string, string[], string[]]> = [
  ['no filters', [], ALL],
  ['an empty filter', [''], ALL],
  // containerd's metadata store after a Prepare answered AlreadyExists (CD/metadata/snapshot.go).
  ['the remote handshake', ['labels."containerd.io/snapshot.ref"==sha256:c2,parent=="sha256:c1"'], ['default/4/sha256:c2']],
  ['the handshake, no match', ['labels."containerd.io/snapshot.ref"==sha256:c2,parent==""'], []],
  ['kind', ['kind==committed'], ['sha256:c1', 'default/4/sha256:c2']],
  ['kind view', ['kind==view'], ['view one']],
  ['name, quoted with a space', ['name=="view one"'], ['view one']],
  ['not equal', ['kind!=committed'], ['default/5/ctr', 'view one']],
  ['not equal, absent label', ['labels.q!="say \\"hi\\""'], ['sha256:c1', 'default/4/sha256:c2', 'default/5/ctr']],
  ['presence', ['labels."containerd.io/snapshot/remote"'], ['sha256:c1']],
  ['a dotted label key, unquoted', ['labels.a.b=="x y"'], ['view one']],
  ['spaces around', ['  kind == active , parent == default/4/sha256:c2 '], ['default/5/ctr']],
  ['any of several filters', ['name==sha256:c1', 'kind==active'], ['sha256:c1', 'default/5/ctr']],
  ['an unknown field is absent', ['size==1'], []],
  ['an unknown field, not equal', ['size!=1'], ALL],
  // Not understood: everything.
  ['a regexp', ['name~=^sha'], ALL],
  ['slash-quoted', ['name==/sha/'], ALL],
  ['an escape not handled', ['name=="\\u0041"'], ALL],
  ['unterminated quote', ['name=="abc'], ALL],
  ['trailing operator', ['name=='], ALL],
  ['garbage', ['!!'], ALL],
  ['one filter not understood among others', ['kind==view', 'name~=x'], ALL],
];

describe('List filters', () => {
  for (const [what, filters, want] of cases) {
    it(`${what}: ${JSON.stringify(filters)}`, () => {
      assert.deepEqual(SNAPS.filter(listFilter(filters)).map((s) => s.name), want);
    });
  }
});
