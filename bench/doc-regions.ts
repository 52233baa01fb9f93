/** The generated regions of a markdown page: `<!-- bench:NAME -->` … `<!-- /bench:NAME -->`. */

/** Replaces the text between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->`. */
export function replaceRegion(text: string, name: string, content: string): string {
  const start = `<!-- bench:${name} -->`;
  const end = `<!-- /bench:${name} -->`;
  const from = text.indexOf(start);
  const to = text.indexOf(end);
  if (from < 0 || to < from) throw new Error(`no region ${start} … ${end}`);
  return `${text.slice(0, from + start.length)}\n${content.trim()}\n${text.slice(to)}`;
}
