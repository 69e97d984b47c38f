/**
 * Asserts that `text` names each fact, in this order: what a message must say (ids, states, versions, errors,
 * numbers), not the words between them. Fails naming the first fact missing.
 */
export function expectFacts(text: unknown, facts: ReadonlyArray<string | number>): void {
  if (typeof text !== 'string') throw new Error(`expected a message, got ${JSON.stringify(text)}`);
  let from = 0;
  for (const fact of facts.map(String)) {
    const at = text.indexOf(fact, from);
    if (at < 0) throw new Error(`expected ${JSON.stringify(text)} to name ${JSON.stringify(fact)} after position ${from}`);
    from = at + fact.length;
  }
}
