fn main() {
    println!("{}", util::greeting("server"));
}
