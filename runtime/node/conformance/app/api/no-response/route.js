export async function GET() {
  // forgot to return
}
