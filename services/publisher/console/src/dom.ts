/** The few DOM helpers the console needs: no framework, and text always set as text (never as HTML). */

/** An element of the page by id; the page (index.html) defines them all, so a missing one is a bug. */
export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const node = document.getElementById(id);
  if (!node) throw new Error(`the console page has no #${id}`);
  return node as T;
}

export type Attributes = Record<string, string> & { text?: string };
export type Child = Node | string | null | undefined | false;

/** `el('td', { class: 'x', text: 'y' }, [child…])`; `text` sets textContent, `onClick` a click handler. */
export function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  children: Child[] = [],
  onClick?: () => void,
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === 'text') node.textContent = value;
    else node.setAttribute(name, value);
  }
  for (const child of children) if (child) node.append(child);
  if (onClick) node.addEventListener('click', onClick);
  return node;
}
