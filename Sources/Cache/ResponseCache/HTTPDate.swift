/// HTTP-dates (RFC 9110 §5.6.7) as Unix seconds: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37
/// GMT`), and the obsolete RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6
/// 08:49:37 1994`) forms a recipient must also accept. nil for anything else.
public enum HTTPDate {
    static let months = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]

    public static func parse(_ text: String) -> Int64? {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "," }).map { String($0) }
        var day: Int?, month: Int?, year: Int?, time: (Int, Int, Int)?
        if words.count == 6, words[5] == "GMT" {
            // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
            day = Int(words[1]); month = monthIndex(words[2]); year = Int(words[3]); time = clock(words[4])
        } else if words.count == 4, words[3] == "GMT" {
            // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
            let parts = words[1].split(separator: "-")
            if parts.count == 3, let two = Int(parts[2]) {
                day = Int(parts[0]); month = monthIndex(String(parts[1]))
                // Two-digit years: no more than 50 years ahead (RFC 9110 §5.6.7).
                year = parts[2].count == 2 ? (two >= 70 ? 1900 + two : 2000 + two) : two
                time = clock(words[2])
            }
        } else if words.count == 5 {
            // asctime: Sun Nov  6 08:49:37 1994
            month = monthIndex(words[1]); day = Int(words[2]); time = clock(words[3]); year = Int(words[4])
        }
        guard let day, let month, let year, let time, (1...31).contains(day), year >= 1970 else { return nil }
        return daysFromCivil(year: year, month: month + 1, day: day) * 86_400 + Int64(time.0 * 3600 + time.1 * 60 + time.2)
    }

    private static func monthIndex(_ text: String) -> Int? {
        months.firstIndex(of: text.lowercased())
    }

    private static func clock(_ text: String) -> (Int, Int, Int)? {
        let parts = text.split(separator: ":").compactMap { Int($0) }
        guard parts.count == 3, (0..<24).contains(parts[0]), (0..<60).contains(parts[1]), (0...60).contains(parts[2]) else { return nil }
        return (parts[0], parts[1], parts[2])
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    static func daysFromCivil(year: Int, month: Int, day: Int) -> Int64 {
        let y = Int64(month <= 2 ? year - 1 : year)
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let m = Int64(month)
        let doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + Int64(day) - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
