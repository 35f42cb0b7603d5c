fn main() {
    println!("{}", util::greeting("cli"));
}
