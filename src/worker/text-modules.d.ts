// Files wrangler bundles as text modules (its default rule for *.html): the import is the file's content.
declare module "*.html" {
  const text: string;
  export default text;
}
